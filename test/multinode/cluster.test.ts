/**
 * The two-node relay over a real 3-master Redis Cluster (the deployment whose PUBLISH count
 * covers one shard only, so a missing node is known by timeout there): an entry made through
 * node A, an agent at node B only, a client asking A is sent to B in one 307 and paired; a
 * code used at A is refused at B; B killed, A answers 503 without a hang.
 */
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, stopAll, type Daemon, type Proc } from '../helpers/daemon.js';
import { closeServer, connect, pollUntil, readExactly } from '../helpers/net.js';
import { startCluster, type RedisCluster } from '../helpers/redis.js';
import type { StatusLine } from '../helpers/curl.js';
import { totpHeader } from '../e2e/util.js';
import { askNode, echoServer, entryAt, registerAt, sharedFiles, startNode, type Shared } from './nodes.js';

let cluster: RedisCluster;
let shared: Shared;
let a: Daemon;
let b: Daemon;
let agent: Proc | undefined;
let echo: net.Server | undefined;

beforeAll(async () => {
  [cluster, shared] = await Promise.all([startCluster(), sharedFiles()]);
  const redis = { cluster: cluster.seeds };
  a = await startNode(redis, shared, '127.0.0.1', 'node-a');
  b = await startNode(redis, shared, '127.0.0.2', 'node-b');
});
afterAll(async () => {
  await agent?.stop();
  if (echo) await closeServer(echo);
  await stopAll();
  await cluster?.stop();
});

describe('two nodes over Redis Cluster', () => {
  it('a client asking A is sent to B in one 307 and paired; a code used at A is refused at B', async () => {
    const e = await echoServer();
    echo = e.server;
    const { file } = await entryAt(a, 'clu', [b]);
    agent = await startAgent(file, `127.0.0.1:${e.port}`);
    // The directory is not read from redis-cli here (its keys live on one shard): ask A until it redirects.
    let r!: StatusLine;
    await pollUntil(async () => (r = await askNode(a, shared, 'clu')).status === 307, 10_000, 100);
    const loc = new URL(r.headers.location!);
    expect(loc.hostname).toBe('127.0.0.2');
    const s = await connect(Number(loc.port), { host: '127.0.0.2' });
    s.write('over the cluster');
    expect((await readExactly(s, 16)).toString()).toBe('over the cluster');
    s.destroy();

    const { agent: other } = await entryAt(a, 'clu2', [a]);
    const auth = totpHeader(other);
    expect((await registerAt(a, shared, 'clu2', auth)).status).toBe(200);
    expect((await registerAt(b, shared, 'clu2', auth)).status).toBe(401);
  });

  it('node B killed: A answers 503 for its label at once, bounded by the 1 s request timeout', async () => {
    b.proc.child.kill('SIGKILL');
    await b.proc.exited;
    const t0 = Date.now();
    const r = await askNode(a, shared, 'clu');
    expect(r.status).toBe(503);
    expect(JSON.parse(r.body)).toMatchObject({ errorCode: 'TAAS_NO_RESPONDER' });
    // 1 s of waiting for B's reply (on Cluster PUBLISH cannot tell nobody listened), plus curl.
    expect(Date.now() - t0).toBeLessThan(3000);
  });
});
