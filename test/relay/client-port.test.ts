/** Client ports: pairing, records, waiting clients, queue bounds, idle close, fixed ports. */
import { afterEach, describe, expect, it } from 'vitest';
import { newCookie, formatCookieLine } from '../../src/protocol/index.js';
import { closed, connect, freePort, pollUntil, readAll, readExactly, sendBytes, writeFlushed } from '../helpers/net.js';
import { addResponder, count, ID, makeRelay, open, type TestRelay } from './relay-harness.js';
import { stripPairingSignal } from '../helpers/signal.js';

let t: TestRelay;
afterEach(async () => {
  await t?.close();
});

describe('client port', () => {
  it('pairs a client with an idle responder and records the pairing with its path', async () => {
    t = makeRelay();
    const r = await addResponder(t, 'demo');
    expect(await t.relay.clientPort('nobody', { remoteAddress: '127.0.0.1', path: '/' })).toBeNull();
    const q = await t.relay.clientPort('demo', { remoteAddress: '::ffff:127.0.0.1', path: '/app?x=1' });
    expect(q).not.toBeNull();
    expect(t.relay.labelState('demo').clientPort).toBe(q);
    // The same port for the label's next request.
    expect(await t.relay.clientPort('demo', { remoteAddress: '127.0.0.1', path: '/app?x=1' })).toBe(q);
    const c = await open(t, q!);
    const [cPort, rPort] = [c.localPort, r.localPort];
    const atResponder = readAll(r);
    const atClient = readAll(c);
    c.end('GET /app?x=1');
    r.end('200 OK, hello');
    expect((await atResponder).data.toString()).toBe('GET /app?x=1');
    expect((await atClient).data.toString()).toBe('200 OK, hello');
    await pollUntil(() => count(t, 'pairing-end') === 1);
    const rec = t.events['pairing-end']![0]!;
    expect(rec).toMatchObject({
      label: 'demo',
      client: `127.0.0.1:${cPort}`,
      responder: `127.0.0.1:${rPort}`,
      path: '/app?x=1',
      bytesUp: 12,
      bytesDown: 13,
      reason: 'eof',
      node: 'node-test',
    });
    expect(Date.parse(rec.end)).toBeGreaterThanOrEqual(Date.parse(rec.start));
    expect(t.events.paired).toHaveLength(1);
    expect(t.relay.labelState('demo')).toMatchObject({ idle: 0, active: 0 });
  });

  it('delivers what a responder sent while idle (server speaks first) before anything else', async () => {
    t = makeRelay();
    const r = await addResponder(t, 'ssh', 'SSH-2.0-one|');
    await writeFlushed(r, 'two|');
    const q = await t.relay.clientPort('ssh', { remoteAddress: '127.0.0.1', path: '/' });
    const c = await open(t, q!);
    const got = readAll(c);
    r.end('three');
    expect((await got).data.toString()).toBe('SSH-2.0-one|two|three');
  });

  it('never drops what an idle responder sends beyond idleBufferBytes (backpressure instead)', async () => {
    t = makeRelay({ idleBufferBytes: 1024 });
    const r = await addResponder(t, 'big');
    const sent = sendBytes(r, 4 * 1024 * 1024, false); // 4 MiB while idle: far past the buffer
    const q = await t.relay.clientPort('big', { remoteAddress: '127.0.0.1', path: '/' });
    const c = await open(t, q!);
    const got = readAll(c, 0);
    // The kernel buffers may take all 4 MiB before the pairing: the responder's FIN then
    // follows them (the client keeps its side open: a FIN with nothing before it, while the
    // client may still be waiting, would mean the client left).
    const hash = await sent;
    r.end();
    const g = await got;
    expect(g.bytes).toBe(4 * 1024 * 1024);
    expect(g.sha256).toBe(hash);
  });

  it('never drops what a waiting client sends beyond its read-ahead', async () => {
    t = makeRelay();
    await addResponder(t, 'big');
    const q = await t.relay.clientPort('big', { remoteAddress: '127.0.0.1', path: '/' });
    await open(t, q!); // takes the only responder
    await pollUntil(() => t.relay.labelState('big').active === 1);
    const cookie = newCookie();
    const { port } = await t.relay.allocate({ id: ID, label: 'big', remoteAddress: '127.0.0.1', cookie });
    const c = await open(t, q!);
    const sent = sendBytes(c, 4 * 1024 * 1024); // 4 MiB while waiting, then FIN
    await pollUntil(() => t.relay.labelState('big').waiting === 1);
    const r = await open(t, port);
    stripPairingSignal(r);
    const got = readAll(r, 0);
    r.write(formatCookieLine(cookie));
    const hash = await sent;
    const g = await got;
    expect(g.bytes).toBe(4 * 1024 * 1024);
    expect(g.sha256).toBe(hash);
  });

  it('makes a client wait for a responder that is coming, passing its early bytes first', async () => {
    t = makeRelay();
    const first = await addResponder(t, 'demo');
    const q = await t.relay.clientPort('demo', { remoteAddress: '127.0.0.1', path: '/' });
    const c1 = await open(t, q!);
    await pollUntil(() => t.relay.labelState('demo').active === 1);
    // The pool is empty, one responder busy, one registration pending: the next client waits.
    const cookie = newCookie();
    const { port } = await t.relay.allocate({ id: ID, label: 'demo', remoteAddress: '127.0.0.1', cookie });
    const c2 = await open(t, q!);
    await writeFlushed(c2, 'early|');
    await pollUntil(() => t.relay.labelState('demo').waiting === 1);
    expect(count(t, 'pool-empty')).toBe(1);
    const r2 = await open(t, port);
    stripPairingSignal(r2);
    const atR2 = readExactly(r2, 10);
    r2.write(formatCookieLine(cookie));
    c2.write('late');
    expect((await atR2).toString()).toBe('early|late');
    await pollUntil(() => t.relay.labelState('demo').active === 2);
    const waits = t.events.paired!.map((p) => p.waitMs);
    expect(waits[1]).toBeGreaterThanOrEqual(0);
    first.destroy();
    c1.destroy();
  });

  it('bounds the waiting queue and each wait', async () => {
    t = makeRelay({ maxWaitingClients: 1, clientWaitTimeout: 1 });
    await addResponder(t, 'demo');
    const q = await t.relay.clientPort('demo', { remoteAddress: '127.0.0.1', path: '/' });
    await open(t, q!); // takes the only responder
    await pollUntil(() => t.relay.labelState('demo').active === 1);
    await t.relay.allocate({ id: ID, label: 'demo', remoteAddress: '127.0.0.1', cookie: newCookie() }); // never comes
    const waiting = await open(t, q!);
    await pollUntil(() => t.relay.labelState('demo').waiting === 1);
    const over = await open(t, q!);
    await closed(over);
    await pollUntil(() => count(t, 'client-refused') === 1);
    expect(t.events['client-refused']![0]).toEqual({ label: 'demo', why: 'queue-full' });
    const started = Date.now();
    await closed(waiting);
    expect(Date.now() - started).toBeLessThan(5000);
    await pollUntil(() => count(t, 'client-refused') === 2);
    expect(t.events['client-refused']![1]).toEqual({ label: 'demo', why: 'timeout' });
    expect(t.relay.labelState('demo').waiting).toBe(0);
  });

  it('serves a client that sends its request and half-closes before it is paired', async () => {
    t = makeRelay();
    const r = await addResponder(t, 'demo');
    const q = await t.relay.clientPort('demo', { remoteAddress: '127.0.0.1', path: '/' });
    const c = await open(t, q!);
    c.end('GET / HTTP/1.0\r\n\r\n'); // at once, like `nc -N`: the FIN races the pairing
    const atR = readAll(r);
    const atC = readAll(c);
    expect((await atR)).toMatchObject({ how: 'end' });
    expect((await atR).data.toString()).toBe('GET / HTTP/1.0\r\n\r\n');
    r.end('HTTP/1.0 200 OK\r\n\r\n');
    expect((await atC).data.toString()).toBe('HTTP/1.0 200 OK\r\n\r\n');
    await pollUntil(() => count(t, 'pairing-end') === 1);
    expect(t.events['pairing-end']![0]!.reason).toBe('eof');
  });

  it('makes a half-closed client that is still waiting wait, then serves it', async () => {
    t = makeRelay();
    await addResponder(t, 'demo');
    const q = await t.relay.clientPort('demo', { remoteAddress: '127.0.0.1', path: '/' });
    await open(t, q!);
    await pollUntil(() => t.relay.labelState('demo').active === 1);
    const cookie = newCookie();
    const { port } = await t.relay.allocate({ id: ID, label: 'demo', remoteAddress: '127.0.0.1', cookie });
    const c = await open(t, q!);
    const atC = readAll(c);
    c.end('request');
    await pollUntil(() => t.relay.labelState('demo').waiting === 1);
    const r2 = await open(t, port);
    stripPairingSignal(r2);
    const atR2 = readAll(r2);
    r2.write(formatCookieLine(cookie));
    expect((await atR2).data.toString()).toBe('request');
    r2.end('reply');
    expect((await atC).data.toString()).toBe('reply');
  });

  it('with no waiting allowed (maxWaitingClients 0, clientWaitTimeout 0) serves idle responders only', async () => {
    for (const over of [{ maxWaitingClients: 0 }, { clientWaitTimeout: 0 }]) {
      t = makeRelay(over);
      await addResponder(t, 'demo');
      await addResponder(t, 'demo');
      await t.relay.allocate({ id: ID, label: 'demo', remoteAddress: '127.0.0.1', cookie: newCookie() }); // never comes
      const q = await t.relay.clientPort('demo', { remoteAddress: '127.0.0.1', path: '/' });
      const [a, b] = [await open(t, q!), await open(t, q!)];
      await pollUntil(() => t.relay.labelState('demo').active === 2);
      const c = await open(t, q!);
      await closed(c);
      await pollUntil(() => count(t, 'client-refused') === 1);
      expect(t.events['client-refused']![0]!.why).toBe('maxWaitingClients' in over ? 'queue-full' : 'timeout');
      a.destroy();
      b.destroy();
      await t.close();
    }
  });

  it('lets a waiting client that disconnects leave the queue', async () => {
    t = makeRelay();
    await addResponder(t, 'demo');
    const q = await t.relay.clientPort('demo', { remoteAddress: '127.0.0.1', path: '/' });
    await open(t, q!);
    await pollUntil(() => t.relay.labelState('demo').active === 1);
    const w = await open(t, q!);
    await pollUntil(() => t.relay.labelState('demo').waiting === 1);
    w.destroy();
    await pollUntil(() => t.relay.labelState('demo').waiting === 0);
  });

  it('closes a client with no responder at all (no-responder)', async () => {
    t = makeRelay();
    const r = await addResponder(t, 'demo');
    const q = await t.relay.clientPort('demo', { remoteAddress: '127.0.0.1', path: '/' });
    r.destroy();
    await pollUntil(() => t.relay.labelState('demo').idle === 0);
    const c = await open(t, q!);
    await closed(c);
    await pollUntil(() => count(t, 'client-refused') === 1);
    expect(t.events['client-refused']![0]).toEqual({ label: 'demo', why: 'no-responder' });
  });

  for (const how of ['FIN', 'reset'] as const) {
    it(`drops an idle responder from the pool at once when it closes (${how})`, async () => {
      t = makeRelay();
      const r = await addResponder(t, 'demo');
      expect(t.relay.labelState('demo').idle).toBe(1);
      if (how === 'FIN') r.end();
      else r.resetAndDestroy();
      await pollUntil(() => t.relay.labelState('demo').idle === 0);
      expect(await t.relay.clientPort('demo', { remoteAddress: '127.0.0.1', path: '/' })).toBeNull();
    });
  }

  it('closes a client port after clientPortIdle with no connection and no pairing', async () => {
    t = makeRelay({ clientPortIdle: 0.2 });
    await addResponder(t, 'demo');
    const q = await t.relay.clientPort('demo', { remoteAddress: '127.0.0.1', path: '/' });
    const started = Date.now();
    await pollUntil(() => t.relay.labelState('demo').clientPort === null, 5000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    await expect(connect(q!)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    // The responder is still idle; the next request opens a port again.
    expect(t.relay.labelState('demo').idle).toBe(1);
    expect(await t.relay.clientPort('demo', { remoteAddress: '127.0.0.1', path: '/' })).not.toBeNull();
  });

  it('keeps a client port open while a pairing on it is in progress', async () => {
    // The pairing outlives clientPortIdle (it ends by its own idle timeout, 0.6 s > 0.2 s).
    t = makeRelay({ clientPortIdle: 0.2, pairingIdleTimeout: 0.6 });
    await addResponder(t, 'demo');
    await addResponder(t, 'demo');
    const q = await t.relay.clientPort('demo', { remoteAddress: '127.0.0.1', path: '/' });
    const started = Date.now();
    await open(t, q!);
    await pollUntil(() => count(t, 'pairing-end') === 1, 5000);
    expect(t.events['pairing-end']![0]!.reason).toBe('idle');
    expect(Date.now() - started).toBeGreaterThanOrEqual(550);
    // Still open after the pairing: the idle period counts from its end.
    expect(t.relay.labelState('demo').clientPort).toBe(q);
    const c2 = await open(t, q!);
    await pollUntil(() => t.relay.labelState('demo').active === 1);
    c2.destroy();
  });

  it('pairs on a fixed client port, and closes it when the entry drops it', async () => {
    t = makeRelay();
    const fixed = await freePort();
    await t.relay.setFixedPorts(new Map([['mqtt', fixed]]));
    expect(t.relay.labelState('mqtt').fixedPort).toBe(fixed);
    const r = await addResponder(t, 'mqtt', 'hello from mqtt|');
    expect(await t.relay.clientPort('mqtt', { remoteAddress: '127.0.0.1', path: '/' })).toBe(fixed);
    const c = await open(t, fixed);
    const got = readAll(c);
    r.end('bye');
    expect((await got).data.toString()).toBe('hello from mqtt|bye');
    c.end();
    await pollUntil(() => count(t, 'pairing-end') === 1);
    await t.relay.setFixedPorts(new Map());
    expect(t.relay.labelState('mqtt').fixedPort).toBeNull();
    await expect(connect(fixed)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('closes client connections beyond maxConnsPerAddress', async () => {
    t = makeRelay({ maxConnsPerAddress: 2, maxWaitingClients: 10 });
    await addResponder(t, 'demo'); // one of the two connections from 127.0.0.1
    const q = await t.relay.clientPort('demo', { remoteAddress: '127.0.0.1', path: '/' });
    const paired = await open(t, q!); // the second: paired
    await pollUntil(() => t.relay.labelState('demo').active === 1);
    const third = await open(t, q!);
    await closed(third);
    await pollUntil(() => count(t, 'client-refused') === 1);
    expect(t.events['client-refused']![0]).toEqual({ label: 'demo', why: 'conn-limit' });
    // Another address is not affected.
    const other = await open(t, q!, '127.0.0.2');
    await pollUntil(() => t.relay.labelState('demo').waiting === 1);
    other.destroy();
    // The paired connections count until their pairing ends, then no more: a new responder
    // and client from 127.0.0.1 fit again (with either count left behind, one would not).
    paired.resetAndDestroy(); // the responder stand-in never ends by itself: a reset ends both
    await pollUntil(() => count(t, 'pairing-end') === 1 && t.relay.labelState('demo').waiting === 0);
    await addResponder(t, 'demo');
    const q2 = await t.relay.clientPort('demo', { remoteAddress: '127.0.0.1', path: '/' });
    await open(t, q2!);
    await pollUntil(() => t.relay.labelState('demo').active === 1);
    expect(count(t, 'client-refused')).toBe(1);
  });

  it('ends pairings on closeAll("drain"), recording the reason', async () => {
    t = makeRelay();
    await addResponder(t, 'demo');
    const q = await t.relay.clientPort('demo', { remoteAddress: '127.0.0.1', path: '/d' });
    const c = await open(t, q!);
    await pollUntil(() => t.relay.activePairings === 1);
    t.relay.stopAccepting();
    t.relay.closeAll('drain');
    await closed(c);
    await pollUntil(() => count(t, 'pairing-end') === 1);
    expect(t.events['pairing-end']![0]).toMatchObject({ reason: 'drain', path: '/d' });
    expect(t.relay.activePairings).toBe(0);
  });
});
