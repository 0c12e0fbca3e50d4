/**
 * The Agent in-process against a real HTTPS registrar (FakeRegistrar) and a real target:
 * pool bookkeeping, pairing and forwarding, the credential sequence, and the retry rules.
 */
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Agent, AGENT_DEFAULTS, type AgentOptions } from '../../src/agent/agent.js';
import { silentLogger } from '../../src/agent/log.js';
import { authScheme, parseSessionAuthorization, type AgentFile } from '../../src/protocol/index.js';
import { closed, freePort, pollUntil, readAll, readExactly, waitFor, writeFlushed } from '../helpers/net.js';
import { agentEngine } from './engine-choice.js';
import { agentFile, certs, FakeRegistrar, pairingSignal, SIGNAL_CLIENT, Target, testSession } from './fixtures.js';

let cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.reverse()) await f();
  cleanup = [];
});
beforeAll(() => void certs());

async function registrar(): Promise<FakeRegistrar> {
  const r = await new FakeRegistrar().start();
  cleanup.push(() => r.close());
  return r;
}

async function target(onConn?: (s: net.Socket) => void): Promise<Target> {
  const t = await new Target(onConn).start();
  cleanup.push(() => t.close());
  return t;
}

function agent(file: AgentFile, tgt: Target | number, over: Partial<AgentOptions> = {}): Agent {
  const a = new Agent({
    ...AGENT_DEFAULTS,
    file,
    target: { host: '127.0.0.1', port: typeof tgt === 'number' ? tgt : tgt.port },
    labels: file.labels,
    pool: 1,
    tls: false,
    serverFirst: false,
    log: silentLogger(),
    engine: agentEngine(),
    ...over,
  });
  cleanup.push(() => a.stop());
  a.start();
  return a;
}

const session = testSession;

describe('Agent: pool and credentials', () => {
  it('opens N registrations: one TOTP code, then the newest session token; each sends its cookie line first', async () => {
    const r = await registrar();
    const issued: string[] = [];
    r.script = (_q, n) => {
      issued.push(session(n));
      return { register: true, session: issued[n] };
    };
    const t = await target();
    const a = agent(agentFile(r.port), t, { pool: 3, concurrency: 1 });
    await r.until(() => r.accepted.length === 3);
    expect(r.requests.map((q) => authScheme(q.authorization!))).toEqual(['totp', 'session', 'session']);
    // Each session registration presents the token of the answer before it.
    expect(parseSessionAuthorization(r.requests[2]!.authorization!).token).toBe(issued[1]);
    expect(r.accepted.map((x) => x.cookieLine)).toEqual(r.issuedCookies.map((c) => `TAAS-Cookie ${c}\r\n`));
    await pollUntil(() => a.snapshot()[0]!.idle === 3);
    // The pool is full: no further registrations.
    expect(r.requests).toHaveLength(3);
    expect(t.conns).toHaveLength(0);
  });

  it('refills concurrently once a session token is held, never with two TOTP codes at once', async () => {
    const r = await registrar();
    const t = await target();
    const a = agent(agentFile(r.port), t, { pool: 8, concurrency: 4 });
    await r.until(() => r.accepted.length === 8);
    expect(r.requests.map((q) => authScheme(q.authorization!))).toEqual(['totp', ...Array(7).fill('session')]);
    await pollUntil(() => a.snapshot()[0]!.idle === 8);
    expect(r.requests).toHaveLength(8);
  });

  it('sends no cookie line when the registrar gave none (original protocol)', async () => {
    const r = await registrar();
    r.script = (_q, n) => ({ register: true, cookie: null, session: session(n) });
    const t = await target((s) => s.on('data', () => s.write('pong\n')));
    agent(agentFile(r.port), t);
    await pollUntil(() => r.connections.length === 1);
    // The client speaks first; the first line the relay side then reads is the target's answer.
    r.connections[0]!.write('ping\n');
    await r.until(() => r.accepted.length === 1);
    expect(r.accepted[0]!.cookieLine).toBe('pong\n');
  });

  it('after a 401 on the session token, authenticates again with a TOTP code of a later step', async () => {
    const r = await registrar();
    r.script = (q, n) => (n === 1 ? { status: 401 } : { register: true, session: session(n) });
    const t = await target();
    agent(agentFile(r.port, { period: 1 }), t, { pool: 2 });
    await r.until(() => r.accepted.length === 2);
    expect(r.requests.map((q) => authScheme(q.authorization!))).toEqual(['totp', 'session', 'totp']);
    expect(r.requests[2]!.authorization).not.toBe(r.requests[0]!.authorization);
  });

  it('recycles idle registrations past the bound: replacement first, then the old one is closed', async () => {
    const r = await registrar();
    r.script = (_q, n) => ({ register: true, session: session(n) });
    const t = await target();
    const a = agent(agentFile(r.port), t, { recycleMs: 400 });
    const failures: unknown[] = [];
    a.on('failure', (f) => failures.push(f));
    await r.until(() => r.accepted.length === 1);
    const first = r.accepted[0]!.socket;
    const firstClosed = closed(first, 5000);
    await r.until(() => r.accepted.length === 2, 5000);
    await firstClosed;
    expect(r.accepted[0]!.socket.destroyed || r.accepted[0]!.socket.readableEnded).toBe(true);
    await pollUntil(() => a.snapshot()[0]!.idle === 1 && a.snapshot()[0]!.retiring === 0);
    // Closing a recycled registration is the agent's own doing, not a relay failure to back off from.
    await r.until(() => r.accepted.length === 3, 5000);
    expect(failures).toEqual([]);
  });

  it('spreads registrations over the listed servers and fails over past a dead one', async () => {
    const r1 = await registrar();
    const r2 = await registrar();
    const dead = await freePort();
    r1.script = r2.script = (_q, n) => ({ register: true, session: session(n) });
    const file = agentFile(dead, { servers: [{ host: '127.0.0.1', port: r1.port }, { host: '127.0.0.1', port: r2.port }] });
    const t = await target();
    agent(file, t, { pool: 4 });
    await pollUntil(() => r1.accepted.length + r2.accepted.length === 4);
    expect(r1.accepted.length).toBeGreaterThan(0);
    expect(r2.accepted.length).toBeGreaterThan(0);
  });

  it('follows a 3xx from one registrar to another', async () => {
    const r2 = await registrar();
    const r1 = await registrar();
    r1.script = () => ({ status: 307, headers: { location: `https://127.0.0.1:${r2.port}/register/demo` } });
    const t = await target();
    agent(agentFile(r1.port), t);
    await r2.until(() => r2.accepted.length === 1);
  });

  it.each([false, true])('an idle registration the relay ends or resets is replaced (tls %s)', async (useTls) => {
    const r = await registrar();
    const t = await target();
    const a = agent(agentFile(r.port), t, { pool: 2, tls: useTls });
    await r.until(() => r.accepted.length === 2);
    r.accepted[0]!.socket.end(); // a FIN: the relay dropped this registration
    r.accepted[1]!.socket.resetAndDestroy(); // a reset
    await r.until(() => r.accepted.length === 4);
    await pollUntil(() => a.snapshot()[0]!.idle === 2);
    expect(t.conns).toHaveLength(0);
  });

  it('stop() closes idle registrations', async () => {
    const r = await registrar();
    const t = await target();
    const a = agent(agentFile(r.port), t, { pool: 2 });
    await r.until(() => r.accepted.length === 2);
    const gone = r.accepted.map((x) => closed(x.socket, 5000));
    await a.stop();
    await Promise.all(gone);
  });
});

describe('Agent: pairing and forwarding', () => {
  it('forwards bytes read before the target was connected, then copies both ways with half-close; refills the pool', async () => {
    const r = await registrar();
    r.script = (_q, n) => ({ register: true, session: session(n) });
    const t = await target();
    const a = agent(agentFile(r.port), t, { pool: 1 });
    await r.until(() => r.accepted.length === 1);
    const relay = r.accepted[0]!.socket;
    relay.resume();
    await writeFlushed(relay, Buffer.concat([pairingSignal(), Buffer.from('early bytes|')]));
    // The pool is refilled as soon as the client is paired.
    await r.until(() => r.accepted.length === 2);
    await pollUntil(() => t.conns.length === 1);
    const tgt = t.conns[0]!;
    const fromClient = readAll(tgt);
    relay.end('and the rest'); // the client half-closes...
    const got = await fromClient;
    expect(got.data.toString()).toBe('early bytes|and the rest');
    expect(got.how).toBe('end');
    // ...and the target keeps answering through the half-open pairing.
    const back = readAll(relay);
    tgt.end('answer after the client FIN');
    expect((await back).data.toString()).toBe('answer after the client FIN');
    await pollUntil(() => a.snapshot()[0]!.paired === 0);
  });

  it.each([
    ['v1', 'PROXY TCP4 203.0.113.7 198.51.100.1 51234 20001\r\n'],
    ['v2', pairingSignal('v2').toString('latin1')],
  ] as const)('--proxy-protocol %s: the target gets the header in that version before the client octets (the relay sent v2)', async (version, expected) => {
    const r = await registrar();
    const t = await target();
    agent(agentFile(r.port), t, { proxyProtocol: version });
    await r.until(() => r.accepted.length === 1);
    const relay = r.accepted[0]!.socket;
    relay.resume();
    relay.end(Buffer.concat([pairingSignal('v2'), Buffer.from('client octets')]));
    await pollUntil(() => t.conns.length === 1);
    const got = await readAll(t.conns[0]!);
    expect(got.data.toString('latin1')).toBe(expected + 'client octets');
  });

  it('a header the client sends itself is data: only the relay\'s first one is taken (no spoofed address)', async () => {
    const r = await registrar();
    const t = await target();
    const a = agent(agentFile(r.port), t, { proxyProtocol: 'v1' });
    const paired = new Promise<unknown>((res) => a.once('paired', (_l, c) => res(c)));
    await r.until(() => r.accepted.length === 1);
    const relay = r.accepted[0]!.socket;
    relay.resume();
    const forged = 'PROXY TCP4 10.6.6.6 10.6.6.6 6666 6666\r\n';
    relay.end(Buffer.concat([pairingSignal('v2'), Buffer.from(forged)]));
    expect(await paired).toEqual(SIGNAL_CLIENT);
    await pollUntil(() => t.conns.length === 1);
    expect((await readAll(t.conns[0]!)).data.toString()).toBe('PROXY TCP4 203.0.113.7 198.51.100.1 51234 20001\r\n' + forged);
  });

  it('a signal cut short is not waited for forever: the pairing is closed after the connect timeout', async () => {
    const r = await registrar();
    const t = await target();
    const a = agent(agentFile(r.port), t, { connectTimeoutMs: 300 });
    await r.until(() => r.accepted.length === 1);
    const relay = r.accepted[0]!.socket;
    relay.resume();
    relay.write(pairingSignal().subarray(0, 10));
    await closed(relay, 5000);
    await pollUntil(() => a.snapshot()[0]!.idle === 1);
    expect(t.conns).toHaveLength(0);
  });

  it('a relay that pairs without the signal: the pairing is closed with one warning, nothing reaches the target', async () => {
    const r = await registrar();
    const t = await target();
    const a = agent(agentFile(r.port), t);
    await r.until(() => r.accepted.length === 1);
    const relay = r.accepted[0]!.socket;
    relay.resume();
    relay.write('GET / HTTP/1.1\r\n\r\n'); // an old relay: the client's octets straight away
    await closed(relay, 5000);
    await pollUntil(() => a.snapshot()[0]!.idle === 1);
    expect(t.conns).toHaveLength(0);
  });

  it('a reset on the target closes the client side', async () => {
    const r = await registrar();
    const t = await target((s) => s.once('data', () => s.resetAndDestroy()));
    agent(agentFile(r.port), t);
    await r.until(() => r.accepted.length === 1);
    const relay = r.accepted[0]!.socket;
    relay.resume();
    relay.write(Buffer.concat([pairingSignal(), Buffer.from('x')]));
    await closed(relay, 5000);
  });

  it('server speaks first: no connection to the target while idle; the banner reaches the client once paired (--server-first is a no-op)', async () => {
    const r = await registrar();
    const t = await target((s) => s.write('SSH-2.0-test\r\n'));
    const a = agent(agentFile(r.port), t, { serverFirst: true, pool: 2 });
    await r.until(() => r.accepted.length === 2);
    await pollUntil(() => a.snapshot()[0]!.idle === 2);
    expect(t.conns).toHaveLength(0);
    const relay = r.accepted[0]!.socket;
    const paired = new Promise<unknown>((res) => a.once('paired', (_l, c) => res(c)));
    await writeFlushed(relay, pairingSignal('v1'));
    expect(await paired).toEqual(SIGNAL_CLIENT);
    const banner = await readExactly(relay, 14);
    expect(banner.toString()).toBe('SSH-2.0-test\r\n');
    expect(t.conns).toHaveLength(1);
    // The client then talks, and the conversation continues on the same target connection.
    const echoed = new Promise<string>((res) => t.conns[0]!.once('data', (d: Buffer) => res(d.toString())));
    relay.write('SSH-2.0-client\r\n');
    expect(await echoed).toBe('SSH-2.0-client\r\n');
  });

  it('--tls: terminates TLS with the label certificate and forwards plaintext to the target', async () => {
    const r = await registrar();
    const t = await target((s) => s.on('data', (d: Buffer) => s.write(`echo:${d.toString()}`)));
    const a = agent(agentFile(r.port), t, { tls: true });
    await r.until(() => r.accepted.length === 1);
    const relay = r.accepted[0]!.socket;
    await writeFlushed(relay, pairingSignal());
    const client = tls.connect({ socket: relay, ca: certs().label.cert, servername: 'demo.test' });
    cleanup.push(() => void client.destroy());
    await waitFor(client, 'secureConnect');
    client.write('hello');
    expect((await readExactly(client as unknown as net.Socket, 10)).toString()).toBe('echo:hello');
    expect(a.snapshot()[0]!.paired).toBe(1);
    await r.until(() => r.accepted.length === 2);
  });

  it('--tls, server speaks first: the banner waits for the client TLS handshake, then comes first', async () => {
    const r = await registrar();
    const t = await target((s) => {
      s.write('220 smtp ready\r\n');
      s.on('data', (d: Buffer) => s.write(`250 ${d.toString()}`));
    });
    agent(agentFile(r.port), t, { tls: true });
    await r.until(() => r.accepted.length === 1);
    // The signal and the ClientHello in one write: the agent must hand the rest to TLS.
    r.accepted[0]!.socket.cork();
    r.accepted[0]!.socket.write(pairingSignal());
    const client = tls.connect({ socket: r.accepted[0]!.socket, ca: certs().label.cert, servername: 'demo.test' });
    setImmediate(() => r.accepted[0]!.socket.uncork());
    cleanup.push(() => void client.destroy());
    expect((await readExactly(client as unknown as net.Socket, 16)).toString()).toBe('220 smtp ready\r\n');
    client.write('HELO\r\n');
    expect((await readExactly(client as unknown as net.Socket, 10)).toString()).toBe('250 HELO\r\n');
  });

  it('--tls keeps half-close: the client ends, the target still answers', async () => {
    const r = await registrar();
    const t = await target();
    agent(agentFile(r.port), t, { tls: true });
    await r.until(() => r.accepted.length === 1);
    await writeFlushed(r.accepted[0]!.socket, pairingSignal());
    const client = tls.connect({ socket: r.accepted[0]!.socket, ca: certs().label.cert, servername: 'demo.test', allowHalfOpen: true });
    cleanup.push(() => void client.destroy());
    await waitFor(client, 'secureConnect');
    client.end('request');
    await pollUntil(() => t.conns.length === 1);
    const got = await readAll(t.conns[0]!);
    expect(got.data.toString()).toBe('request');
    expect(got.how).toBe('end');
    const back = readAll(client as unknown as net.Socket);
    t.conns[0]!.end('answer after FIN');
    expect((await back).data.toString()).toBe('answer after FIN');
  });

  it('--tls without a certificate in the agent file is refused at start', () => {
    const { tls: _drop, ...file } = agentFile(1);
    expect(() => new Agent({ ...AGENT_DEFAULTS, file, target: { host: '127.0.0.1', port: 1 }, labels: ['demo'], pool: 1, tls: true, serverFirst: false, log: silentLogger() })).toThrow(/tls/);
  });

  it('a target that is down closes the paired client and the agent keeps serving', async () => {
    const r = await registrar();
    const a = agent(agentFile(r.port), await freePort());
    await r.until(() => r.accepted.length === 1);
    const relay = r.accepted[0]!.socket;
    relay.resume();
    relay.write(Buffer.concat([pairingSignal(), Buffer.from('hi')]));
    await closed(relay, 5000);
    await r.until(() => r.accepted.length === 2);
    await pollUntil(() => a.snapshot()[0]!.idle === 1);
  });
});

describe('Agent: retries never spin', () => {
  it('backs off exponentially with jitter while the relay is unreachable', async () => {
    const dead = await freePort();
    const t = await target();
    const a = agent(agentFile(dead), t, { retryBaseMs: 20, retryCapMs: 160 });
    const waits: number[] = [];
    a.on('failure', (f) => waits.push(f.waitMs));
    const t0 = Date.now();
    await pollUntil(() => waits.length >= 6, 10_000);
    const elapsed = Date.now() - t0;
    // 6 failures cannot come faster than the enforced floor allows, and each wait is capped.
    expect(Math.max(...waits)).toBeLessThanOrEqual(160);
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(50);
    expect(elapsed).toBeGreaterThanOrEqual(5 * 50);
  });

  it('a 401 to a TOTP code waits the cap before trying again', async () => {
    const r = await registrar();
    r.script = () => ({ status: 401, headers: { 'www-authenticate': 'TOTP realm="taas"' } });
    const t = await target();
    const a = agent(agentFile(r.port, { period: 1 }), t, { retryCapMs: 600 });
    const fails: { waitMs: number; status?: number }[] = [];
    a.on('failure', (f) => fails.push(f));
    await r.until(() => r.requests.length === 2, 5000);
    // The cap, or longer when the next unspent step is further away (period 1 s here).
    expect(fails[0]).toMatchObject({ status: 401 });
    expect(fails[0]!.waitMs).toBeGreaterThanOrEqual(600);
    expect(fails[0]!.waitMs).toBeLessThanOrEqual(1000);
    expect(r.requests[1]!.at - r.requests[0]!.at).toBeGreaterThanOrEqual(590);
    // A code of another step (the credential rules are unit-tested in credentials.test.ts).
    expect(r.requests[1]!.authorization).not.toBe(r.requests[0]!.authorization);
  });

  it('a 404 pauses that label only, at the cap', async () => {
    const r = await registrar();
    r.script = (q, n) => (q.url.endsWith('/nope') ? { status: 404 } : { register: true, session: session(n) });
    const t = await target();
    const file = agentFile(r.port, { labels: ['demo', 'nope'] });
    const a = agent(file, t, { pool: 2, retryCapMs: 60_000 });
    await r.until(() => r.accepted.length === 2);
    // Only the registrations already in flight when the first 404 came back; then the label waits.
    expect(r.requests.filter((q) => q.url.endsWith('/nope')).length).toBeLessThanOrEqual(2);
    expect(a.snapshot().find((p) => p.label === 'demo')!.idle).toBe(2);
  });

  it('waits Retry-After on 429', async () => {
    const r = await registrar();
    r.script = (_q, n) => (n === 0 ? { status: 429, headers: { 'retry-after': '1' } } : { register: true });
    const t = await target();
    // period 1: the code spent on the 429 must not delay the retry beyond Retry-After.
    agent(agentFile(r.port, { period: 1 }), t);
    await r.until(() => r.accepted.length === 1, 5000);
    expect(r.requests[1]!.at - r.requests[0]!.at).toBeGreaterThanOrEqual(990);
  });

  it('a relay that closes each registration at once is met with backoff, not a loop', async () => {
    const r = await registrar();
    r.closeOnAccept = true;
    r.script = (_q, n) => ({ register: true, session: session(n) });
    const t = await target();
    const a = agent(agentFile(r.port), t, { retryBaseMs: 100, retryCapMs: 400 });
    const waits: number[] = [];
    a.on('failure', (f) => waits.push(f.waitMs));
    const t0 = Date.now();
    await r.until(() => r.requests.length >= 5, 10_000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(4 * 50);
    expect(waits.length).toBeGreaterThanOrEqual(3);
  });
});
