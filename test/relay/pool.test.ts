/** Responder pools under load, and liveness: dead idle responders are replaced at pairing time. */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { formatCookieLine, newCookie } from '../../src/protocol/index.js';
import { pollUntil, readAll, readExactly } from '../helpers/net.js';
import { addResponder, count, ID, makeRelay, open, track, type TestRelay } from './relay-harness.js';
import { stripPairingSignal } from '../helpers/signal.js';

let t: TestRelay;
afterEach(async () => {
  await t?.close();
});

/**
 * An in-process agent: keeps `poolSize` registrations open; each responder, once paired (its
 * first octets arrive), is replaced by a fresh registration and echoes what it gets.
 */
function startAgent(t: TestRelay, label: string, poolSize: number): { stop(): void; registrations(): number } {
  let stopped = false;
  let registrations = 0;
  const register = async (): Promise<void> => {
    if (stopped) return;
    registrations++;
    const cookie = newCookie();
    const { port } = await t.relay.allocate({ id: ID, label, remoteAddress: '127.0.0.1', cookie });
    const s = await open(t, port);
    stripPairingSignal(s);
    s.write(formatCookieLine(cookie));
    s.once('data', (first: Buffer) => {
      void register();
      s.write(first);
      s.on('data', (c: Buffer) => s.write(c));
      s.on('end', () => s.end());
    });
  };
  for (let i = 0; i < poolSize; i++) void register();
  return {
    stop: () => void (stopped = true),
    registrations: () => registrations,
  };
}

describe('responder pool', () => {
  it('serves 200 concurrent clients from a pool of 8 responders that re-register as used', async () => {
    t = makeRelay({ clientWaitTimeout: 30 });
    const agent = startAgent(t, 'busy', 8);
    await pollUntil(() => t.relay.labelState('busy').idle === 8);
    const n = 200;
    const replies = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const q = await t.relay.clientPort('busy', { remoteAddress: '127.0.0.1', path: `/c/${i}` });
        const c = await open(t, q!);
        const got = readAll(c);
        c.end(`client ${i}`);
        return (await got).data.toString();
      }),
    );
    agent.stop();
    replies.forEach((r, i) => expect(r).toBe(`client ${i}`));
    await pollUntil(() => count(t, 'pairing-end') === n);
    const recs = t.events['pairing-end']!;
    expect(recs.every((r) => r.reason === 'eof')).toBe(true);
    expect(new Set(recs.map((r) => r.path)).size).toBe(1); // one client address: its latest path
    expect(recs.every((r) => r.bytesUp === r.bytesDown && r.bytesUp >= 8)).toBe(true);
    expect(count(t, 'paired')).toBe(n);
    expect(agent.registrations()).toBeGreaterThanOrEqual(n + 8);
    expect(t.relay.labelState('busy').waiting).toBe(0);
  });

  /**
   * Makes the relay learn of the death of `dead` only after it has taken it for a new client:
   * on loopback the handshake completes inside connect(2), so the client's 'connect' and the
   * relay's accept are reported by the same poll; the reset (or close) sent from the client's
   * 'connect' callback reaches the relay's socket after that poll, i.e. after the relay took
   * `dead` — still looking alive — for the client. The relay must notice and use the next one.
   */
  function connectThenKill(port: number, dead: net.Socket, death: 'reset' | 'FIN'): net.Socket {
    const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    track(t, c);
    c.once('connect', () => (death === 'reset' ? dead.resetAndDestroy() : dead.destroy()));
    return c;
  }

  for (const death of ['reset', 'FIN'] as const) {
    it(`replaces an idle responder found dead (${death}) at pairing time with the next idle one`, async () => {
      t = makeRelay();
      const dead = await addResponder(t, 'live');
      const alive = await addResponder(t, 'live', 'B|');
      expect(t.relay.labelState('live').idle).toBe(2);
      const q = await t.relay.clientPort('live', { remoteAddress: '127.0.0.1', path: '/' });
      const c = connectThenKill(q!, dead, death);
      expect((await readExactly(c, 2)).toString()).toBe('B|');
      const atAlive = readExactly(alive, 5);
      c.write('hello');
      expect((await atAlive).toString()).toBe('hello');
      expect(count(t, 'responder-dead')).toBe(1);
      expect(t.relay.labelState('live')).toMatchObject({ idle: 0, active: 1 });
    });
  }

  it('refuses the client when the only idle responder is found dead and none is coming', async () => {
    t = makeRelay();
    const dead = await addResponder(t, 'live');
    const q = await t.relay.clientPort('live', { remoteAddress: '127.0.0.1', path: '/' });
    const c = connectThenKill(q!, dead, 'reset');
    const got = await readAll(c);
    expect(got.bytes).toBe(0);
    await pollUntil(() => count(t, 'client-refused') === 1);
    expect(t.events['client-refused']![0]!.why).toBe('no-responder');
    expect(count(t, 'responder-dead')).toBe(1);
  });

  it('closes extra responders beyond maxIdlePerLabel', async () => {
    t = makeRelay({ maxIdlePerLabel: 1 });
    await addResponder(t, 'one');
    // The bound holds at allocation time too.
    await expect(t.relay.allocate({ id: ID, label: 'one', remoteAddress: '127.0.0.1', cookie: newCookie() })).rejects.toMatchObject({
      code: 'TAAS_LIMIT_REACHED',
    });
    expect(t.relay.labelState('one').idle).toBe(1);
  });
});

