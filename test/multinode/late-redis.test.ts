/**
 * Decoupled start on many nodes: both nodes start while their Redis is not there yet (serving,
 * answering 503 where Redis is needed), and join each other by themselves once it comes up:
 * an entry made through A, an agent at B, a client asking A sent to B; B opens a fixed client
 * port given through A. No restart.
 */
import type net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import type { StatusLine } from '../helpers/curl.js';
import { startAgent, stopAll, type Proc } from '../helpers/daemon.js';
import { closeServer, connect, freePort, pollUntil, readExactly } from '../helpers/net.js';
import { startRedis, type RedisProcess } from '../helpers/redis.js';
import { askNode, echoServer, entryAt, sharedFiles, startNode } from './nodes.js';

let redis: RedisProcess | undefined;
let agent: Proc | undefined;
let echo: net.Server | undefined;
afterAll(async () => {
  await agent?.stop();
  if (echo) await closeServer(echo);
  await stopAll();
  await redis?.stop();
});

describe('nodes started before Redis', () => {
  it('serve 503 meanwhile, then find each other once Redis is up', async () => {
    const port = await freePort();
    const shared = await sharedFiles();
    const setting = { url: `redis://127.0.0.1:${port}` };
    const a = await startNode(setting, shared, '127.0.0.1', 'node-a');
    const b = await startNode(setting, shared, '127.0.0.2', 'node-b');
    const early = await askNode(a, shared, 'late');
    expect(early.status).toBe(503);
    expect(JSON.parse(early.body)).toMatchObject({ errorCode: 'TAAS_STORE_UNAVAILABLE' });

    redis = await startRedis({ port });
    // Both nodes advertise themselves once they reach Redis (at their next reconnection and heartbeat).
    await pollUntil(() => Number(redis!.cli('zcard', '{taas}:nodes')) === 2, 15_000, 50);
    const e = await echoServer();
    echo = e.server;
    const { file } = await entryAt(a, 'late', [b]);
    agent = await startAgent(file, `127.0.0.1:${e.port}`);
    let r!: StatusLine;
    await pollUntil(async () => (r = await askNode(a, shared, 'late')).status === 307, 10_000, 100);
    const loc = new URL(r.headers.location!);
    expect(loc.hostname).toBe('127.0.0.2');
    const s = await connect(Number(loc.port), { host: '127.0.0.2' });
    s.write('late');
    expect((await readExactly(s, 4)).toString()).toBe('late');
    s.destroy();

    // B also hears entry changes made through A: a fixed client port given to an entry there
    // is opened by B without a restart.
    const fixed = await freePort('127.0.0.2');
    await entryAt(a, 'fixed', [b], ['--client-port', `fixed=${fixed}`]);
    await pollUntil(
      () =>
        connect(fixed, { host: '127.0.0.2' }).then(
          (c) => (c.destroy(), true),
          () => false,
        ),
      10_000,
      100,
    );
  });
});
