/**
 * A node that is full (maxPorts reached) sends a hidden server to another node with a 307, and
 * the agent, whose file names the full node only, follows it and registers there.
 */
import type net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { startAgent, stopAll, type Proc } from '../helpers/daemon.js';
import { closeServer, connect, pollUntil, readExactly } from '../helpers/net.js';
import { startRedis, type RedisProcess } from '../helpers/redis.js';
import { advertisedIdle, askNode, echoServer, entryAt, sharedFiles, startNode } from './nodes.js';

let redis: RedisProcess | undefined;
let agent: Proc | undefined;
let echo: net.Server | undefined;
let held: net.Socket | undefined;
afterAll(async () => {
  held?.destroy();
  await agent?.stop();
  if (echo) await closeServer(echo);
  await stopAll();
  await redis?.stop();
});

describe('a full node', () => {
  it('sends the agent to another node (307), which it follows', async () => {
    redis = await startRedis();
    const shared = await sharedFiles();
    // One relay port at A: once its client port is open, A has no port for a registration.
    const a = await startNode(redis, shared, '127.0.0.1', 'node-a', { maxPorts: 1 });
    const b = await startNode(redis, shared, '127.0.0.2', 'node-b');
    const e = await echoServer();
    echo = e.server;
    const { file } = await entryAt(a, 'full', [a]);
    agent = await startAgent(file, `127.0.0.1:${e.port}`);
    await pollUntil(() => advertisedIdle(redis!, 'node-a', 'full') === 1, 10_000, 20);

    // A client takes A's responder through A's client port (A's one port now).
    const r = await askNode(a, shared, 'full');
    expect(new URL(r.headers.location!).hostname).toBe('127.0.0.1');
    held = await connect(Number(new URL(r.headers.location!).port));
    held.write('full');
    expect((await readExactly(held, 4)).toString()).toBe('full');

    // The agent's refill is refused at A for want of a port and sent to B, where it registers.
    await pollUntil(() => advertisedIdle(redis!, 'node-b', 'full') === 1, 15_000, 50);
    expect(a.proc.logs('registration sent to another node').length).toBeGreaterThanOrEqual(1);
    expect(b.proc.logs('registration accepted', { label: 'full' })).toHaveLength(1);
  });
});
