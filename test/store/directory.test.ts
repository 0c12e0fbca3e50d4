/**
 * The multi-node directory on one real Redis: two directories in this process (nodes A and B)
 * and one in a child process that is SIGKILLed, as a crashed node would be.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isTaasError } from '../../src/errors.js';
import type { ClientPortHandler } from '../../src/store/directory.js';
import { RedisDirectory } from '../../src/store/directory-redis.js';
import { RedisStore } from '../../src/store/redis-store.js';
import { SecretBox } from '../../src/store/secret-box.js';
import { pollUntil, waitFor } from '../helpers/net.js';
import { type RedisProcess, startRedis } from '../helpers/redis.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const box = new SecretBox([{ id: 'k1', key: crypto.randomBytes(32) }]);
const logger = pino({ level: 'silent' });
const HEARTBEAT_S = 0.5;
let redis: RedisProcess;

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

describe('Redis directory', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  let prefix = '';
  beforeEach(() => {
    prefix = `d${crypto.randomBytes(4).toString('hex')}`;
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function node(id: string, handler?: ClientPortHandler, host = '127.0.0.1', heartbeatInterval = HEARTBEAT_S) {
    const store = await RedisStore.connect({ url: redis.url, prefix }, box, logger, id);
    const dir = new RedisDirectory(store, {
      self: { id, registrar: { host, port: 8443 }, clientHost: host },
      heartbeatInterval,
      onClientPortRequest: handler,
    });
    cleanups.push(() => store.close());
    cleanups.push(() => dir.close());
    await dir.start();
    return dir;
  }

  it('lists live nodes with their endpoints, this node first', async () => {
    const a = await node('node-a');
    const b = await node('node-b', undefined, '127.0.0.2');
    const nodes = await a.listNodes();
    expect(nodes.map((n) => n.id)).toEqual(['node-a', 'node-b']);
    expect(nodes[1]).toMatchObject({ id: 'node-b', registrar: { host: '127.0.0.2', port: 8443 }, clientHost: '127.0.0.2', draining: false, idleTotal: 0, load: 0 });
    b.setDraining(true);
    await pollUntil(async () => (await a.listNodes())[1]!.draining, 3000);
  });

  it('shares each node\'s live detail per label, dropped when the node leaves', async () => {
    const a = await node('node-a');
    const b = await node('node-b');
    const st = { label: 'lab', idle: 2, pending: 1, waiting: 0, active: 3, clientPort: 40001, fixedPort: null };
    b.setLiveState([st]);
    a.setLiveState([]);
    await pollUntil(async () => (await a.listLiveStates()).some((n) => n.nodeId === 'node-b' && n.labels.length === 1), 3000, 20);
    expect(await a.listLiveStates()).toEqual([
      { nodeId: 'node-a', labels: [] },
      { nodeId: 'node-b', labels: [st] },
    ]);
    await b.close();
    expect((await a.listLiveStates()).map((n) => n.nodeId)).toEqual(['node-a']);
  });

  it('picks the least loaded node that is not draining for a hidden server sent elsewhere', async () => {
    const a = await node('node-a');
    const b = await node('node-b');
    const c = await node('node-c');
    expect(await a.pickNodeForRegistration()).toMatchObject({ id: 'node-b' });
    b.setLoad(0.7);
    c.setLoad(0.2);
    await pollUntil(async () => (await a.pickNodeForRegistration())?.id === 'node-c', 3000, 20);
    c.setDraining(true);
    await pollUntil(async () => (await a.pickNodeForRegistration())?.id === 'node-b', 3000, 20);
    b.setLoad(1);
    await pollUntil(async () => (await a.pickNodeForRegistration()) === null, 3000, 20);
  });

  it('finds the nodes with idle responders for a label, most idle first, soon after a change', async () => {
    // Heartbeats 60 s apart: what is seen within the test was written on change (coalesced, 100 ms).
    const a = await node('node-a', undefined, '127.0.0.1', 60);
    const b = await node('node-b', undefined, '127.0.0.1', 60);
    const c = await node('node-c', undefined, '127.0.0.1', 60);
    expect(await a.findNodesFor('lab')).toEqual([]);
    b.setIdle('lab', 2);
    c.setIdle('lab', 5);
    c.setIdle('other', 1);
    await pollUntil(async () => (await a.findNodesFor('lab')).length === 2, 3000, 10);
    const found = await a.findNodesFor('lab');
    expect(found.map((n) => [n.id, n.idle])).toEqual([
      ['node-c', 5],
      ['node-b', 2],
    ]);
    expect(found[0]!.idleTotal).toBe(6);
    // This node is left out unless asked for.
    a.setIdle('lab', 9);
    await pollUntil(async () => (await a.findNodesFor('lab', { includeSelf: true }))[0]?.id === 'node-a', 3000, 10);
    expect((await a.findNodesFor('lab')).map((n) => n.id)).toEqual(['node-c', 'node-b']);
    b.setIdle('lab', 0);
    await pollUntil(async () => (await a.findNodesFor('lab')).length === 1, 3000, 10);
  });

  it('asks another node for a client port and gets its answer', async () => {
    const asked: string[] = [];
    const a = await node('node-a');
    await node('node-b', async (label) => {
      asked.push(label);
      if (label === 'boom') throw new Error('pool exploded');
      if (label === 'slow') await new Promise((r) => setTimeout(r, 3000));
      return label === 'lab' ? { host: '127.0.0.2', port: 40123 } : null;
    });
    const t0 = performance.now();
    expect(await a.requestClientPort('node-b', 'lab')).toEqual({ node: 'node-b', host: '127.0.0.2', port: 40123 });
    console.log(`directory: client-port request/reply over pub/sub took ${(performance.now() - t0).toFixed(1)} ms`);
    expect(await a.requestClientPort('node-b', 'none')).toBeNull();
    expect(await a.requestClientPort('node-b', 'boom')).toBeNull();
    const t1 = performance.now();
    expect(await a.requestClientPort('node-b', 'slow', 300)).toBeNull();
    expect(performance.now() - t1).toBeGreaterThanOrEqual(290);
    expect(performance.now() - t1).toBeLessThan(1000);
    expect(asked).toEqual(['lab', 'none', 'boom', 'slow']);
    // Nobody listens on a missing node's channel: known at once, not after the timeout.
    const t2 = performance.now();
    expect(await a.requestClientPort('node-zz', 'lab', 5000)).toBeNull();
    expect(performance.now() - t2).toBeLessThan(1000);
  });

  it('findClientPort goes to the most idle node that grants a port', async () => {
    const a = await node('node-a');
    const b = await node('node-b', async () => null);
    const c = await node('node-c', async () => ({ host: '127.0.0.3', port: 41000 }));
    b.setIdle('lab', 9);
    c.setIdle('lab', 1);
    await pollUntil(async () => (await a.findNodesFor('lab')).length === 2, 3000, 10);
    expect(await a.findClientPort('lab')).toEqual({ node: 'node-c', host: '127.0.0.3', port: 41000 });
    expect(await a.findClientPort('nolabel')).toBeNull();
  });

  it('forgets a node that leaves at once, and one that is killed within the TTL', async () => {
    const a = await node('node-a');
    const b = await node('node-b');
    b.setIdle('lab', 1);
    await pollUntil(async () => (await a.findNodesFor('lab')).length === 1, 3000, 10);
    await b.close();
    expect(await a.findNodesFor('lab')).toEqual([]);
    expect((await a.listNodes()).map((n) => n.id)).toEqual(['node-a']);

    // A node in another process, killed with SIGKILL: nobody cleans up after it.
    const child: ChildProcess = spawn(process.execPath, [path.join(here, 'fixtures/directory-node.mjs'), redis.url, prefix, 'node-k', 'klab', String(HEARTBEAT_S)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    cleanups.push(() => void child.kill('SIGKILL'));
    await waitFor(child.stdout!, 'data', 10_000);
    expect((await a.findNodesFor('klab')).map((n) => [n.id, n.idle])).toEqual([['node-k', 3]]);
    expect(await a.findClientPort('klab')).toEqual({ node: 'node-k', host: '127.0.0.9', port: 40999 });
    const exited = waitFor(child, 'exit');
    child.kill('SIGKILL');
    await exited;
    const t0 = performance.now();
    await pollUntil(async () => (await a.findNodesFor('klab')).length === 0, 10_000, 20);
    const gone = performance.now() - t0;
    console.log(`directory: killed node gone after ${Math.round(gone)} ms (TTL ${HEARTBEAT_S * 3000} ms)`);
    expect(gone).toBeLessThanOrEqual(HEARTBEAT_S * 3000 + 200);
    expect(await a.requestClientPort('node-k', 'klab')).toBeNull();
  });

  it('throws TAAS_STORE_UNAVAILABLE while Redis is down and re-advertises when it returns', async () => {
    const a = await node('node-a');
    const b = await node('node-b');
    b.setIdle('lab', 4);
    await pollUntil(async () => (await a.findNodesFor('lab')).length === 1, 3000, 10);
    await redis.kill();
    try {
      const t0 = performance.now();
      await expect(a.findNodesFor('lab')).rejects.toSatisfy((e) => isTaasError(e, 'TAAS_STORE_UNAVAILABLE'));
      await expect(a.requestClientPort('node-b', 'lab')).rejects.toSatisfy((e) => isTaasError(e, 'TAAS_STORE_UNAVAILABLE'));
      expect(performance.now() - t0).toBeLessThan(1700);
    } finally {
      // Restarted empty: only heartbeats bring the directory back.
      await redis.restart();
    }
    await pollUntil(async () => (await a.findNodesFor('lab').catch(() => [])).length === 1, 10_000, 50);
  });
});
