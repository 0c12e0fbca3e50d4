/**
 * Issue 4, "How it is shown", on real processes: two daemons (node A on 127.0.0.1, node B on
 * 127.0.0.2) over one real redis-server, the real agent, curl as the mobile client.
 * The tests run in order on the same relay: the cross-node 307, the shared replay guard, a
 * Redis outage under an established pairing, and last node B killed with SIGKILL.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curl } from '../helpers/curl.js';
import { startAgent, stopAll, type Daemon, type Proc } from '../helpers/daemon.js';
import { closeServer, connect, listen, pollUntil, readAll, readExactly, untilData, waitFor } from '../helpers/net.js';
import { startRedis, type RedisProcess } from '../helpers/redis.js';
import { totpHeader } from '../e2e/util.js';
import { KEYS, TTL_MS, advertisedIdle, askNode, echoServer, entryAt, hiddenHttps, registerAt, sharedFiles, startNode, type Shared } from './nodes.js';

let redis: RedisProcess;
let shared: Shared;
let a: Daemon;
let b: Daemon;
const agents: Proc[] = [];
const servers: net.Server[] = [];
/** Timings measured on the way, printed once for the record (not asserted beyond their bounds). */
const figures: Record<string, number> = {};

beforeAll(async () => {
  [redis, shared] = await Promise.all([startRedis(), sharedFiles()]);
  // A lock-out long enough to be seen from the other node (the default first one is 1 s).
  a = await startNode(redis, shared, '127.0.0.1', 'node-a', { lockoutBase: 60 });
  b = await startNode(redis, shared, '127.0.0.2', 'node-b', { lockoutBase: 60 });
});
afterAll(async () => {
  // Node B is SIGKILLed by the last test only: if it left before, show why (stderr, last log lines).
  for (const [name, d] of [['A', a], ['B', b]] as const) {
    if (d && !d.proc.running && d.proc.signal !== 'SIGKILL') console.error(`node ${name} exited early (${d.proc.exitCode}): ${d.proc.stderr.slice(-3000)}\n${d.proc.stdout.slice(-3000)}`);
  }
  console.info(`multinode figures (ms, TTL ${TTL_MS}): ${JSON.stringify(figures)}`);
  await Promise.all(agents.map((p) => p.stop()));
  for (const s of servers) {
    (s as { closeAllConnections?: () => void }).closeAllConnections?.();
    await closeServer(s);
  }
  await stopAll();
  await redis?.stop();
});

/** Waits until node `id` advertises at least one idle responder for `label`. */
function advertised(id: string, label: string): Promise<void> {
  return pollUntil(() => advertisedIdle(redis, id, label) > 0, 10_000, 20);
}

describe('two nodes, one Redis', () => {
  it('curl asking node A reaches a hidden server registered only at node B, through one 307 to node B', async () => {
    const hidden = await hiddenHttps(['demo.localhost'], ['127.0.0.2']);
    servers.push(hidden.server);
    // Entry made through A; the agent knows B alone.
    const { file } = await entryAt(a, 'demo', [b]);
    agents.push(await startAgent(file, `127.0.0.1:${hidden.port}`));
    await advertised('node-b', 'demo');
    expect(advertisedIdle(redis, 'node-a', 'demo')).toBe(0);

    // curl trusts the relay's certificate (first leg, at A) and the hidden server's (second leg, end to end).
    const bundle = path.join(shared.dir, 'bundle-demo.pem');
    fs.writeFileSync(bundle, fs.readFileSync(shared.certFile, 'utf8') + hidden.pem.cert);
    const host = 'demo.localhost';
    const r = await curl(['-L', '--cacert', bundle, '--resolve', `${host}:${a.registrarPort}:127.0.0.1`, '-w', '\n%{num_redirects} %{url_effective}', `https://${host}:${a.registrarPort}/x?y=1`]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const [body, tail] = r.stdout.toString().split('\n');
    expect(body).toBe('hidden server saw GET /x?y=1');
    const [redirects, effective] = tail!.split(' ');
    expect(redirects).toBe('1');
    expect(new URL(effective!).hostname).toBe('127.0.0.2');
    expect(a.proc.logs('client sent to another node', { label: 'demo', node: 'node-b' })).toHaveLength(1);

    // What the extra hop costs: time to the 307 asking A (directory read, request/reply over
    // Redis) against asking B, which holds the responder (curl's own figure, TLS included).
    const to307 = async (node: Daemon, ip: string): Promise<number> => {
      const t = await curl(['-o', '/dev/null', '-w', '%{http_code} %{time_total}', '--cacert', shared.certFile, '--resolve', `${host}:${node.registrarPort}:${ip}`, `https://${host}:${node.registrarPort}/`]);
      const [code, secs] = t.stdout.toString().split(' ');
      expect(code).toBe('307');
      return Math.round(Number(secs) * 1000);
    };
    // Each asked twice, the second counted: a node's first TLS handshake for a name mints its leaf.
    await to307(b, '127.0.0.2');
    figures.redirectViaOtherNodeMs = await to307(a, '127.0.0.1');
    figures.redirectAtOwnNodeMs = await to307(b, '127.0.0.2');

    // The pairing happened at B and is recorded in the shared store: A's CLI lists it.
    let listed: { path?: string; node?: string }[] = [];
    await pollUntil(async () => (listed = JSON.parse((await a.cli(['pairings', 'demo', '--json'])).stdout || '[]')).length > 0, 10_000, 200);
    expect(listed[0]).toMatchObject({ path: '/x?y=1', node: 'node-b' });
  });

  it('agent files list every live node; a --tls agent at node B, its file made through A: curl asking A, trusting only the relay CA, validates both legs', async () => {
    const plain = http.createServer((req, res) => res.writeHead(200).end(`plain target saw ${req.url}`));
    servers.push(plain);
    const port = await listen(plain);
    // The agent file A writes names A and, in `servers`, the other live node; its --tls
    // certificate also covers B's address, where A sends clients.
    const written = JSON.parse(fs.readFileSync(await a.addEntry(['listed']), 'utf8'));
    expect(written.server).toEqual({ host: '127.0.0.1', port: a.registrarPort });
    expect(written.servers).toEqual([{ host: '127.0.0.2', port: b.registrarPort }]);
    const { file } = await entryAt(a, 'web', [b]);
    agents.push(await startAgent(file, `127.0.0.1:${port}`, ['--tls']));
    await advertised('node-b', 'web');
    const host = 'web.localhost';
    const r = await curl(['-L', '--cacert', shared.certFile, '--resolve', `${host}:${a.registrarPort}:127.0.0.1`, '-w', '\n%{url_effective}', `https://${host}:${a.registrarPort}/tls`]);
    expect(r.stderr).toBe('');
    const [body, effective] = r.stdout.toString().split('\n');
    expect(body).toBe('plain target saw /tls');
    expect(new URL(effective!).hostname).toBe('127.0.0.2');
  });

  it('node A with no idle responder left (its one is paired) sends the next client to node B, which has some', async () => {
    const echo = await echoServer();
    servers.push(echo.server);
    // Pool 1 over [A, B]: the registration goes to A; once it is paired, the refill goes to B
    // (the agent registers where it holds the fewest idle responders, nodes taking turns on a tie).
    const { file } = await entryAt(a, 'busy', [a, b]);
    agents.push(await startAgent(file, `127.0.0.1:${echo.port}`, [], { pool: 1 }));
    await advertised('node-a', 'busy');
    const first = await askNode(a, shared, 'busy');
    expect(new URL(first.headers.location!).hostname).toBe('127.0.0.1');
    const held = await connect(Number(new URL(first.headers.location!).port));
    held.write('held');
    expect((await readExactly(held, 4)).toString()).toBe('held');
    // A's responder is paired (active), the agent's refill went to B.
    await pollUntil(() => advertisedIdle(redis, 'node-a', 'busy') === 0 && advertisedIdle(redis, 'node-b', 'busy') >= 1, 10_000, 20);
    const next = await askNode(a, shared, 'busy');
    expect(next.status).toBe(307);
    expect(new URL(next.headers.location!).hostname).toBe('127.0.0.2');
    held.destroy();
  });

  it('a TOTP code used at node A is refused at node B (one replay guard)', async () => {
    const { agent } = await entryAt(a, 'replay', [a]);
    const auth = totpHeader(agent);
    const atA = await registerAt(a, shared, 'replay', auth);
    expect(atA.status).toBe(200);
    const atB = await registerAt(b, shared, 'replay', auth);
    expect(atB.status).toBe(401);
    expect(JSON.parse(atB.body)).toMatchObject({ errorCode: 'TAAS_AUTH_FAILED' });
    // B does authenticate this entry with a code not yet used: the refusal is the replay, nothing else.
    const fresh = await registerAt(b, shared, 'replay', totpHeader(agent, 1));
    expect(fresh.status).toBe(200);
  });

  it('failed attempts counted at both nodes add up to one lock-out, which holds at both', async () => {
    const { agent } = await entryAt(a, 'locked', [a]);
    const right = /response="(\d+)"/.exec(totpHeader(agent))![1]!;
    const wrong = `TOTP username="${agent.id}", response="${String((Number(right) + 1) % 10 ** right.length).padStart(right.length, '0')}"`;
    // lockoutThreshold is 5: three failures at A and two at B, neither node reaching it alone.
    for (const node of [a, b, a, b, a]) expect((await registerAt(node, shared, 'locked', wrong)).status).toBe(401);
    for (const node of [b, a]) {
      const r = await registerAt(node, shared, 'locked', totpHeader(agent));
      expect(r.status).toBe(429);
      expect(JSON.parse(r.body)).toMatchObject({ errorCode: 'TAAS_LOCKED_OUT' });
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
    }
  });

  it('an entry removed through A: its idle responder at B is closed at once, and its label granted anew never reaches the old hidden server', async () => {
    const echo = await echoServer();
    servers.push(echo.server);
    const old = await entryAt(a, 'moved', [b]);
    const agent = await startAgent(old.file, `127.0.0.1:${echo.port}`);
    agents.push(agent);
    await advertised('node-b', 'moved');
    expect((await a.cli(['entries', 'remove', old.agent.id])).code).toBe(0);
    await pollUntil(() => advertisedIdle(redis, 'node-b', 'moved') === 0, 10_000, 20);
    expect(b.proc.logs('idle responders closed: their entry no longer holds the label', { label: 'moved' })).toHaveLength(1);
    await agent.stop();
    // The label now belongs to another entry, whose hidden server is not connected: 503, not the old one.
    await entryAt(a, 'moved', [a]);
    const r = await askNode(a, shared, 'moved');
    expect(r.status).toBe(503);
    expect(JSON.parse(r.body)).toMatchObject({ errorCode: 'TAAS_NO_RESPONDER' });
  });

  it('Redis down mid-transfer: the pairing carries every octet, registrations get a prompt 503, and succeed again once Redis is back', async () => {
    const echo = await echoServer();
    servers.push(echo.server);
    const { file } = await entryAt(a, 'stream', [b]);
    const probe = await entryAt(a, 'probe', [a]);
    // A pool of 2: one responder is paired below, the other stays idle through the outage.
    agents.push(await startAgent(file, `127.0.0.1:${echo.port}`, [], { pool: 2 }));
    await advertised('node-b', 'stream');

    // The mobile client asks A, is sent to B's client port and connects there.
    const r307 = await askNode(a, shared, 'stream');
    expect(r307.status).toBe(307);
    const loc = new URL(r307.headers.location!);
    expect(loc.hostname).toBe('127.0.0.2');
    const client = await connect(Number(loc.port), { host: '127.0.0.2' });
    const received = readAll(client, 0);
    let back = 0;
    client.on('data', (c: Buffer) => (back += c.length));
    const sent = crypto.createHash('sha256');
    const PHASE = 4 << 20;
    const CHUNK = 64 * 1024;
    const send = async (n: number): Promise<void> => {
      for (let done = 0; done < n; done += CHUNK) {
        const chunk = crypto.randomBytes(CHUNK);
        sent.update(chunk);
        if (!client.write(chunk)) await waitFor(client, 'drain', 30_000);
      }
    };
    await send(PHASE);
    await untilData(client, () => back >= PHASE, 'the first phase echoed', 20_000);

    // Redis hangs (SIGSTOP) and then dies, with its data snapshotted as a real one would have.
    redis.cli('save');
    redis.freeze();
    const t0 = Date.now();
    const hung = await registerAt(a, shared, 'probe', totpHeader(probe.agent));
    expect(hung.status).toBe(503);
    expect(Number(hung.headers['retry-after'])).toBeGreaterThan(0);
    // Bounded by the command timeout (1.5 s), not by ioredis' ~73 s queue.
    figures.frozen503Ms = Date.now() - t0;
    expect(figures.frozen503Ms).toBeLessThan(5000);
    await redis.kill();
    const t1 = Date.now();
    const down = await registerAt(b, shared, 'probe', totpHeader(probe.agent));
    expect(down.status).toBe(503);
    expect(Number(down.headers['retry-after'])).toBeGreaterThan(0);
    figures.down503Ms = Date.now() - t1;
    expect(figures.down503Ms).toBeLessThan(5000);
    // A cannot ask the directory where stream's responders are; B, which holds one idle, still
    // serves a client that asks it directly (the label is known from the registration it holds).
    const client503 = await askNode(a, shared, 'stream');
    expect(client503.status).toBe(503);
    const atB = await askNode(b, shared, 'stream');
    expect(atB.status).toBe(307);
    const second = await connect(Number(new URL(atB.headers.location!).port), { host: '127.0.0.2' });
    second.write('ping during the outage');
    expect((await readExactly(second, 22)).toString()).toBe('ping during the outage');
    second.destroy();

    // The established pairing (at B) never needed Redis: it keeps carrying octets through the outage.
    await send(PHASE);
    await untilData(client, () => back >= 2 * PHASE, 'the second phase echoed', 20_000);

    // Redis returns (same port, same dir, its snapshot): both nodes use it again by themselves.
    await redis.restart();
    const restartedAt = Date.now();
    await pollUntil(async () => (await registerAt(a, shared, 'probe', totpHeader(probe.agent))).status === 200, 15_000, 250);
    figures.registeredAfterRedisMs = Date.now() - restartedAt;
    const again = await entryAt(a, 'after', [b]);
    expect((await registerAt(b, shared, 'after', totpHeader(again.agent))).status).toBe(200);
    expect(a.proc.logs('taas-server ready')).toHaveLength(1);
    expect(b.proc.logs('taas-server ready')).toHaveLength(1);

    client.end();
    const got = await received;
    expect(got.how).toBe('end');
    expect(got.bytes).toBe(2 * PHASE);
    expect(got.sha256).toBe(sent.digest('hex'));
  });

  it('node B killed with SIGKILL: gone from the directory within the TTL; A answers 503 for its labels, and pairs them itself once the agent re-registers there', async () => {
    const hidden = await hiddenHttps(['both.localhost', 'solo.localhost'], ['127.0.0.1', '127.0.0.2']);
    servers.push(hidden.server);
    const solo = await entryAt(a, 'solo', [b]);
    const both = await entryAt(a, 'both', [b, a]);
    agents.push(await startAgent(solo.file, `127.0.0.1:${hidden.port}`));
    // The agent spreads its pool of 2 over the nodes it knows: one at B, one at A.
    const spread = await startAgent(both.file, `127.0.0.1:${hidden.port}`, [], { pool: 2 });
    agents.push(spread);
    await advertised('node-b', 'solo');
    await advertised('node-b', 'both');
    await advertised('node-a', 'both');
    expect((await askNode(a, shared, 'solo')).status).toBe(307);

    b.proc.child.kill('SIGKILL');
    await b.proc.exited;
    const killedAt = Date.now();
    // At once, while B's record still says it holds solo's responder: nobody listens on B's
    // request channel any more, so A answers 503 without waiting for the record to expire.
    const early = await askNode(a, shared, 'solo');
    figures.first503AfterKillMs = Date.now() - killedAt;
    figures.recordLeftMs = Number(redis.cli('pttl', KEYS.node('node-b')));
    expect(early.status).toBe(503);
    expect(JSON.parse(early.body)).toMatchObject({ errorCode: 'TAAS_NO_RESPONDER' });
    expect(Number(early.headers['retry-after'])).toBeGreaterThan(0);

    await pollUntil(() => redis.cli('exists', KEYS.node('node-b')) === '0', TTL_MS + 2000, 20);
    figures.goneAfterKillMs = Date.now() - killedAt;
    expect(figures.goneAfterKillMs).toBeLessThanOrEqual(TTL_MS + 1000);
    // And once it has expired: still 503 (only B held solo's responders).
    expect((await askNode(a, shared, 'solo')).status).toBe(503);

    // both: the agent refills its pool at A (B is unreachable), and A pairs the client itself.
    await pollUntil(() => advertisedIdle(redis, 'node-a', 'both') >= 2, 20_000, 50);
    figures.agentRefilledAtAMs = Date.now() - killedAt;
    const bundle = path.join(shared.dir, 'bundle-both.pem');
    fs.writeFileSync(bundle, fs.readFileSync(shared.certFile, 'utf8') + hidden.pem.cert);
    const host = 'both.localhost';
    const c = await curl(['-L', '--cacert', bundle, '--resolve', `${host}:${a.registrarPort}:127.0.0.1`, '-w', '\n%{url_effective}', `https://${host}:${a.registrarPort}/after-b`]);
    expect(c.stderr).toBe('');
    const [body, effective] = c.stdout.toString().split('\n');
    expect(body).toBe('hidden server saw GET /after-b');
    expect(new URL(effective!).hostname).toBe('127.0.0.1');
  });
});
