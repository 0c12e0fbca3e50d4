/**
 * SNI passthrough on two nodes with `sharedPort: true` over one real redis-server: the agent
 * registered at node B only, curl asks node A's shared port for the passthrough label and is
 * carried to B (no 307: its URL is unchanged, TLS end to end with the hidden server's own
 * certificate). With no idle responder anywhere the client is closed at once. A carried client
 * is held to its label's policy at the node that carries it, on its own address.
 */
import fs from 'node:fs';
import path from 'node:path';
import type https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curl } from '../helpers/curl.js';
import { startAgent, stopAll, type Daemon, type Proc } from '../helpers/daemon.js';
import { closeServer, pollUntil } from '../helpers/net.js';
import { startRedis, type RedisProcess } from '../helpers/redis.js';
import { advertisedIdle, entryAt, hiddenHttps, sharedFiles, startNode, type Shared } from './nodes.js';

let redis: RedisProcess;
let shared: Shared;
let a: Daemon;
let b: Daemon;
let agent: Proc | undefined;
let hidden: https.Server | undefined;

beforeAll(async () => {
  [redis, shared] = await Promise.all([startRedis(), sharedFiles()]);
  a = await startNode(redis, shared, '127.0.0.1', 'node-a', { sharedPort: true });
  b = await startNode(redis, shared, '127.0.0.2', 'node-b', { sharedPort: true });
});
afterAll(async () => {
  await agent?.stop();
  if (hidden) {
    hidden.closeAllConnections();
    await closeServer(hidden);
  }
  await stopAll();
  await redis?.stop();
});

describe('SNI passthrough on two nodes', () => {
  it('a client at the node without a responder is carried to the node with one, URL unchanged', async () => {
    const h = await hiddenHttps(['far.localhost'], ['127.0.0.1']);
    hidden = h.server;
    const own = path.join(shared.dir, 'hidden.pem');
    fs.writeFileSync(own, h.pem.cert);
    const { file } = await entryAt(a, 'far', [b], ['--client-mode', 'passthrough']);

    // No responder anywhere: closed at once (no 503 can be written inside a TLS handshake).
    const none = await curl(['--cacert', own, '--max-time', '5', `https://far.localhost:${a.registrarPort}/`]);
    expect(none.code).not.toBe(0);
    expect(none.code).not.toBe(28); // not a timeout: cut at once

    agent = await startAgent(file, `127.0.0.1:${h.port}`);
    expect((await agent.waitLog('registration established')).relay).toBe(`127.0.0.2:${b.registrarPort}`);
    await pollUntil(() => advertisedIdle(redis, 'node-b', 'far') > 0, 10_000, 50, 'node B advertising its idle responder');

    const r = await curl(['--cacert', own, '-w', '\n%{num_redirects} %{url_effective}', `https://far.localhost:${a.registrarPort}/p?q`]);
    expect(r.stderr).toBe('');
    expect(r.stdout.toString()).toBe(`hidden server saw GET /p?q\n0 https://far.localhost:${a.registrarPort}/p?q`);
    await a.proc.waitLog('client sent to another node', 1, 10_000, { label: 'far' });
    await b.proc.waitLog('pairing ended', 1, 10_000, { label: 'far' });
  });

  it("a carried client is checked against its label's policy at the carrying node, on its own address", async () => {
    // Node B sees a carried client come from node A's address: only A can tell who it is.
    const before = a.proc.lines.filter((l) => l.msg === 'label policies changed').length;
    const set = await a.cli(['entries', 'policy', 'far', '--deny', '127.0.0.3/32']);
    expect(set.stderr).toBe('');
    await a.proc.until(() => a.proc.lines.filter((l) => l.msg === 'label policies changed').length > before, 'the policy applied at node A');
    await pollUntil(() => advertisedIdle(redis, 'node-b', 'far') > 0, 10_000, 50, 'node B advertising its idle responder');
    const own = path.join(shared.dir, 'hidden.pem');
    const denied = await curl(['--cacert', own, '--max-time', '5', '--interface', '127.0.0.3', '--resolve', `far.localhost:${a.registrarPort}:127.0.0.1`, `https://far.localhost:${a.registrarPort}/`]);
    expect(denied.code).not.toBe(0);
    expect(denied.stdout.toString()).toBe('');
    await a.proc.waitLog('mobile client refused', 1, 10_000, { label: 'far', why: 'denied' });
    const allowed = await curl(['--cacert', own, '--resolve', `far.localhost:${a.registrarPort}:127.0.0.1`, `https://far.localhost:${a.registrarPort}/ok`]);
    expect(allowed.stdout.toString()).toBe('hidden server saw GET /ok');
  });
});
