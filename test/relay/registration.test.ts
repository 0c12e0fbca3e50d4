/** Allocated (one-shot) ports: cookie, source address, single use, timeout, limits, busy ports. */
import net from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { validate } from '../../src/config/schema.js';
import { isTaasError } from '../../src/errors.js';
import { formatCookieLine, newCookie } from '../../src/protocol/index.js';
import { closed, closeServer, connect, listen, pollUntil, readExactly, writeFlushed } from '../helpers/net.js';
import { addResponder, count, ID, makeRelay, open, testRange, track, type TestRelay } from './relay-harness.js';

let t: TestRelay;
afterEach(async () => {
  await t?.close();
});

function refusedCode(port: number, localAddress?: string): Promise<string> {
  return connect(port, { localAddress }).then(
    (s) => {
      s.destroy();
      return 'connected';
    },
    (e: NodeJS.ErrnoException) => e.code ?? 'unknown',
  );
}

describe('allocated port', () => {
  it('takes the genuine responder (cookie first), strips the cookie line and closes its listener', async () => {
    t = makeRelay();
    const cookie = newCookie();
    const { port } = await t.relay.allocate({ id: ID, label: 'demo', remoteAddress: '::ffff:127.0.0.1', cookie });
    expect(port).toBeGreaterThanOrEqual(t.config.portRange[0]);
    expect(port).toBeLessThanOrEqual(t.config.portRange[1]);
    expect(t.events.allocated).toEqual([{ id: ID, label: 'demo', port, remoteAddress: '127.0.0.1' }]);
    expect(t.relay.labelState('demo')).toMatchObject({ idle: 0, pending: 1 });
    const s = await open(t, port);
    s.write(formatCookieLine(cookie));
    await pollUntil(() => t.relay.labelState('demo').idle === 1);
    expect(t.relay.labelState('demo')).toMatchObject({ idle: 1, pending: 0 });
    expect(t.events['responder-ready']).toEqual([{ label: 'demo' }]);
    // A second connection to the same port: the listener is gone.
    expect(await refusedCode(port)).toBe('ECONNREFUSED');
  });

  it('refuses a connection from another address while the genuine one from 127.0.0.1 works', async () => {
    t = makeRelay();
    const cookie = newCookie();
    const { port } = await t.relay.allocate({ id: ID, label: 'demo', remoteAddress: '127.0.0.1', cookie });
    const stranger = await open(t, port, '127.0.0.2');
    const strangerGone = closed(stranger);
    stranger.write(formatCookieLine(cookie)); // even with the right cookie
    await strangerGone;
    await pollUntil(() => count(t, 'responder-refused') === 1);
    expect(t.events['responder-refused']![0]).toEqual({ label: 'demo', port, remoteAddress: '127.0.0.2', why: 'address' });
    expect(t.relay.labelState('demo')).toMatchObject({ idle: 0, pending: 1 });
    const genuine = await open(t, port, '127.0.0.1');
    genuine.write(formatCookieLine(cookie));
    await pollUntil(() => t.relay.labelState('demo').idle === 1);
  });

  it('accepts another address when checkSourceAddress is off', async () => {
    t = makeRelay({ checkSourceAddress: false });
    const cookie = newCookie();
    const { port } = await t.relay.allocate({ id: ID, label: 'demo', remoteAddress: '10.9.8.7', cookie });
    const s = await open(t, port, '127.0.0.2');
    s.write(formatCookieLine(cookie));
    await pollUntil(() => t.relay.labelState('demo').idle === 1);
  });

  for (const [what, bytes] of [
    ['a wrong cookie', formatCookieLine(newCookie())],
    ['a malformed cookie line', 'TAAS-Cookie !!!\r\n'],
    ['no cookie line (original protocol, not allowed)', 'GET / HTTP/1.1\r\n\r\n'],
  ] as const) {
    it(`refuses ${what} without consuming the registration`, async () => {
      t = makeRelay();
      const cookie = newCookie();
      const { port } = await t.relay.allocate({ id: ID, label: 'demo', remoteAddress: '127.0.0.1', cookie });
      const bad = await open(t, port);
      const gone = closed(bad);
      bad.write(bytes);
      await gone;
      await pollUntil(() => count(t, 'responder-refused') === 1);
      expect(t.events['responder-refused']![0]!.why).toBe('cookie');
      expect(t.relay.labelState('demo').pending).toBe(1);
      const genuine = await open(t, port);
      genuine.write(formatCookieLine(cookie));
      await pollUntil(() => t.relay.labelState('demo').idle === 1);
    });
  }

  it('logs refusals in one line each, without any cookie (ours or the one presented)', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (l: string) => void lines.push(l) });
    t = makeRelay({}, logger);
    const cookie = newCookie();
    const wrong = newCookie();
    const { port } = await t.relay.allocate({ id: ID, label: 'demo', remoteAddress: '127.0.0.1', cookie });
    const bad = await open(t, port);
    bad.write(formatCookieLine(wrong));
    await closed(bad);
    const stranger = await open(t, port, '127.0.0.2');
    stranger.write(formatCookieLine(cookie));
    await closed(stranger);
    const genuine = await open(t, port);
    genuine.write(formatCookieLine(cookie));
    await pollUntil(() => t.relay.labelState('demo').idle === 1);
    const refusals = lines.filter((l) => l.includes('refused'));
    expect(refusals).toHaveLength(2);
    expect(refusals.map((l) => JSON.parse(l).why)).toEqual(['cookie', 'address']);
    const all = lines.join('');
    expect(all).not.toContain(cookie);
    expect(all).not.toContain(wrong);
  });

  it('refuses a connection that stays silent (timeout) without consuming the registration', async () => {
    t = makeRelay({ registrationTimeout: 1 });
    const cookie = newCookie();
    const { port } = await t.relay.allocate({ id: ID, label: 'demo', remoteAddress: '127.0.0.1', cookie });
    const started = Date.now();
    const silent = await open(t, port);
    await closed(silent);
    // Cut off at half the registration's time, so the genuine hidden server still has the rest.
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    await pollUntil(() => count(t, 'responder-refused') === 1);
    expect(t.events['responder-refused']![0]!.why).toBe('timeout');
    const genuine = await open(t, port);
    genuine.write(formatCookieLine(cookie));
    await pollUntil(() => t.relay.labelState('demo').idle === 1);
  });

  it('accepts a cookie line that arrives a few octets at a time, bytes after it kept', async () => {
    t = makeRelay();
    const cookie = newCookie();
    const { port } = await t.relay.allocate({ id: ID, label: 'demo', remoteAddress: '127.0.0.1', cookie });
    const s = await open(t, port);
    const line = formatCookieLine(cookie) + 'first|';
    for (let i = 0; i < line.length; i += 3) await writeFlushed(s, line.slice(i, i + 3));
    await pollUntil(() => t.relay.labelState('demo').idle === 1);
    const q = await t.relay.clientPort('demo', { remoteAddress: '127.0.0.1', path: '/' });
    const c = await open(t, q!);
    expect((await readExactly(c, 6)).toString()).toBe('first|');
  });

  it('cuts off an endless cookie line at its bound without consuming the registration', async () => {
    t = makeRelay();
    const cookie = newCookie();
    const { port } = await t.relay.allocate({ id: ID, label: 'demo', remoteAddress: '127.0.0.1', cookie });
    const s = await open(t, port);
    const gone = closed(s);
    s.write('TAAS-Cookie ' + 'A'.repeat(64 * 1024)); // no line end, ever
    await gone;
    await pollUntil(() => count(t, 'responder-refused') === 1);
    expect(t.events['responder-refused']![0]!.why).toBe('cookie');
    const genuine = await open(t, port);
    genuine.write(formatCookieLine(cookie));
    await pollUntil(() => t.relay.labelState('demo').idle === 1);
  });

  it('gives up after registrationTimeout: port closed, registration-expired, nothing pending', async () => {
    t = makeRelay({ registrationTimeout: 0.2 });
    const started = Date.now();
    const { port } = await t.relay.allocate({ id: ID, label: 'demo', remoteAddress: '127.0.0.1', cookie: newCookie() });
    await pollUntil(() => count(t, 'registration-expired') === 1, 5000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(t.events['registration-expired']).toEqual([{ label: 'demo', port }]);
    expect(t.relay.labelState('demo')).toMatchObject({ idle: 0, pending: 0 });
    await pollUntil(async () => (await refusedCode(port)) === 'ECONNREFUSED', 2000);
    expect(t.relay.openPorts).toBe(0);
  });

  it('with allowCookieless, takes a silent original-protocol responder, and keeps early bytes', async () => {
    t = makeRelay({ allowCookieless: true });
    const a = await t.relay.allocate({ id: ID, label: 'demo', remoteAddress: '127.0.0.1', cookie: newCookie() });
    await open(t, a.port); // says nothing: accepted after the grace period
    await pollUntil(() => t.relay.labelState('demo').idle === 1);
    const b = await t.relay.allocate({ id: ID, label: 'banner', remoteAddress: '127.0.0.1', cookie: newCookie() });
    const r = await open(t, b.port);
    r.write('SSH-2.0-test\r\n'); // server-speaks-first, no cookie
    await pollUntil(() => t.relay.labelState('banner').idle === 1);
    const q = await t.relay.clientPort('banner', { remoteAddress: '127.0.0.1', path: '/' });
    const c = await open(t, q!);
    expect((await readExactly(c, 14)).toString()).toBe('SSH-2.0-test\r\n');
  });

  it('bounds pending registrations per ID, and refuses new ones while draining', async () => {
    t = makeRelay({ maxPendingPerId: 2 });
    const reg = { id: ID, label: 'demo', remoteAddress: '127.0.0.1', cookie: newCookie() };
    await t.relay.allocate(reg);
    await t.relay.allocate(reg);
    await expect(t.relay.allocate(reg)).rejects.toSatisfy((e) => isTaasError(e, 'TAAS_LIMIT_REACHED'));
    await t.relay.allocate({ ...reg, id: 'another-id' });
    t.relay.stopAccepting();
    await expect(t.relay.allocate({ ...reg, id: 'third-id' })).rejects.toSatisfy((e) => isTaasError(e, 'TAAS_DRAINING'));
  });

  it('bounds idle plus pending responders per label (maxIdlePerLabel)', async () => {
    t = makeRelay({ maxIdlePerLabel: 2 });
    await addResponder(t, 'demo');
    await t.relay.allocate({ id: ID, label: 'demo', remoteAddress: '127.0.0.1', cookie: newCookie() });
    await expect(
      t.relay.allocate({ id: ID, label: 'demo', remoteAddress: '127.0.0.1', cookie: newCookie() }),
    ).rejects.toSatisfy((e) => isTaasError(e, 'TAAS_LIMIT_REACHED'));
    await t.relay.allocate({ id: ID, label: 'other', remoteAddress: '127.0.0.1', cookie: newCookie() });
  });

  it('skips a busy port, rotates through the range, and says TAAS_NO_PORT when all are taken', async () => {
    // Two adjacent free ports below the ephemeral range (where TIME_WAIT from other tests'
    // outgoing connections can block a bind); the first is occupied by a foreign listener.
    let foreign: net.Server | null = null;
    let lo = 0;
    for (let i = 0; i < 20 && !foreign; i++) {
      [lo] = testRange(2);
      const probe = net.createServer();
      const next = net.createServer();
      try {
        await listen(probe, lo);
        await listen(next, lo + 1);
        await closeServer(next);
        foreign = probe;
      } catch {
        await closeServer(probe);
        await closeServer(next);
      }
    }
    expect(foreign).not.toBeNull();
    try {
      t = makeRelay({ portRange: [lo, lo + 1], registrationTimeout: 0.2 });
      const reg = { id: ID, label: 'demo', remoteAddress: '127.0.0.1', cookie: newCookie() };
      expect((await t.relay.allocate(reg)).port).toBe(lo + 1);
      await expect(t.relay.allocate({ ...reg, id: 'b' })).rejects.toSatisfy((e) => isTaasError(e, 'TAAS_NO_PORT'));
      await closeServer(foreign!);
      foreign = null;
      // Rotation: the next allocation is the port after the last one handed out (wrapping).
      expect((await t.relay.allocate({ ...reg, id: 'c' })).port).toBe(lo);
      expect(t.relay.openPorts).toBe(2);
    } finally {
      if (foreign) await closeServer(foreign);
    }
  });

  it('bounds open ports (maxPorts) with TAAS_LIMIT_REACHED', async () => {
    t = makeRelay({ maxPorts: 2 });
    const reg = { id: ID, label: 'demo', remoteAddress: '127.0.0.1', cookie: newCookie() };
    await t.relay.allocate(reg);
    await t.relay.allocate({ ...reg, label: 'b' });
    await expect(t.relay.allocate({ ...reg, label: 'c' })).rejects.toSatisfy((e) => isTaasError(e, 'TAAS_LIMIT_REACHED'));
    expect(t.relay.openPorts).toBe(2);
  });

  it('applies reloaded limits (a config reload) to the next allocation', async () => {
    t = makeRelay({ maxPorts: 1, maxPendingPerId: 1 });
    const reg = { id: ID, label: 'demo', remoteAddress: '127.0.0.1', cookie: newCookie() };
    await t.relay.allocate(reg);
    await expect(t.relay.allocate({ ...reg, id: 'b' })).rejects.toSatisfy((e) => isTaasError(e, 'TAAS_LIMIT_REACHED'));
    t.live.replace(validate({ ...t.config, maxPorts: 3, maxPendingPerId: 2 }));
    await t.relay.allocate({ ...reg, id: 'b' });
    await t.relay.allocate(reg);
    await expect(t.relay.allocate(reg)).rejects.toSatisfy((e) => isTaasError(e, 'TAAS_LIMIT_REACHED'));
    expect(t.relay.openPorts).toBe(3);
  });

  it('is not locked out by a flood of silent connections from the right address', async () => {
    t = makeRelay();
    const cookie = newCookie();
    const { port } = await t.relay.allocate({ id: ID, label: 'demo', remoteAddress: '127.0.0.1', cookie });
    const silent = await Promise.all(Array.from({ length: 12 }, () => open(t, port)));
    // The oldest four are pushed out as the ninth to twelfth arrive.
    await Promise.all(silent.slice(0, 4).map((s) => closed(s)));
    const genuine = await open(t, port);
    genuine.write(formatCookieLine(cookie));
    await pollUntil(() => t.relay.labelState('demo').idle === 1);
    // Taking the genuine one closes the other candidates and the listener.
    await Promise.all(silent.slice(4).map((s) => closed(s)));
    expect(await refusedCode(port)).toBe('ECONNREFUSED');
  });

  it('closes a flood of connections beyond maxConnsPerAddress', async () => {
    t = makeRelay({ maxConnsPerAddress: 2 });
    const cookie = newCookie();
    const { port } = await t.relay.allocate({ id: ID, label: 'demo', remoteAddress: '127.0.0.1', cookie });
    const held = [await open(t, port), await open(t, port)];
    const third = await open(t, port);
    await closed(third);
    await pollUntil(() => count(t, 'responder-refused') === 1);
    expect(t.events['responder-refused']![0]!.why).toBe('conn-limit');
    // The two admitted ones are still open and one of them can complete the registration.
    held[0]!.write(formatCookieLine(cookie));
    await pollUntil(() => t.relay.labelState('demo').idle === 1);
    track(t, held[1]!);
  });
});
