/**
 * The two-node relay over the Redis deployments docs/multinode.md recommends, each a real one:
 * one server over TLS with a password (`rediss://`, private CA), and Sentinel with a failover
 * while both nodes run (the master SIGKILLed, the replica promoted; nodes follow by themselves).
 */
import type net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { StatusLine } from '../helpers/curl.js';
import { startAgent, stopAll, tempDir, type Daemon, type Proc } from '../helpers/daemon.js';
import { closeServer, connect, pollUntil, readExactly } from '../helpers/net.js';
import { makeTlsFiles, startRedis, startSentinel } from '../helpers/redis.js';
import { totpHeader } from '../e2e/util.js';
import { askNode, echoServer, entryAt, registerAt, sharedFiles, startNode, type Shared } from './nodes.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await stopAll();
});

/** Entry through A, agent at B, a client asking A is sent to B and echoed. */
async function crossNode(a: Daemon, b: Daemon, shared: Shared, label: string): Promise<void> {
  const echo = await echoServer();
  cleanups.push(() => closeServer(echo.server));
  const { file } = await entryAt(a, label, [b]);
  const agent: Proc = await startAgent(file, `127.0.0.1:${echo.port}`);
  cleanups.push(() => agent.stop());
  let r!: StatusLine;
  await pollUntil(async () => (r = await askNode(a, shared, label)).status === 307, 10_000, 100);
  const loc = new URL(r.headers.location!);
  expect(loc.hostname).toBe('127.0.0.2');
  const s: net.Socket = await connect(Number(loc.port), { host: '127.0.0.2' });
  s.write(label);
  expect((await readExactly(s, label.length)).toString()).toBe(label);
  s.destroy();
}

describe('two nodes over other Redis deployments', () => {
  it('rediss:// with a password and a private CA', async () => {
    const tls = makeTlsFiles(tempDir('taas-redis-tls-'));
    const redis = await startRedis({ tls, password: 's3cret pw' });
    cleanups.push(() => redis.stop());
    const shared = await sharedFiles();
    const setting = { url: redis.url, tlsCaFile: tls.ca };
    expect(redis.url.startsWith('rediss://')).toBe(true);
    const a = await startNode(setting, shared, '127.0.0.1', 'node-a');
    const b = await startNode(setting, shared, '127.0.0.2', 'node-b');
    await crossNode(a, b, shared, 'tls');
    // The password never reaches a log line.
    expect(a.proc.stdout + b.proc.stdout).not.toContain('s3cret');
  });

  it('Sentinel: the master dies with both nodes running; registrations and redirects work again after the failover, no restart', async () => {
    const setup = await startSentinel('sentinel-pw');
    cleanups.push(() => setup.stop());
    const shared = await sharedFiles();
    const setting = { sentinels: setup.sentinels, name: setup.name, password: 'sentinel-pw' };
    const a = await startNode(setting, shared, '127.0.0.1', 'node-a');
    const b = await startNode(setting, shared, '127.0.0.2', 'node-b');
    const probe = await entryAt(a, 'probe', [a]);
    // Replicated before the master dies, so the promoted replica holds the entries.
    await pollUntil(() => setup.replica.cli('hlen', '{taas}:entries') === setup.master.cli('hlen', '{taas}:entries'), 5000, 20);

    await setup.master.kill();
    const t0 = Date.now();
    await pollUntil(async () => (await registerAt(b, shared, 'probe', totpHeader(probe.agent))).status === 200, 30_000, 250);
    console.info(`multinode over Sentinel: registrations at node B again ${Date.now() - t0} ms after the master died`);
    // Each node finds the new master on its own reconnection: wait for A too (its /readyz pings Redis).
    await pollUntil(async () => (await fetch(`http://127.0.0.1:${a.adminPort}/readyz`).catch(() => null))?.status === 200, 30_000, 250);
    expect(/role:master/.test(setup.replica.cli('info', 'replication'))).toBe(true);
    await crossNode(a, b, shared, 'after-failover');
    expect(a.proc.logs('taas-server ready')).toHaveLength(1);
    expect(b.proc.logs('taas-server ready')).toHaveLength(1);
  });
});
