/**
 * The store contract on a real 3-master Redis Cluster: every operation must stay within one
 * hash slot (a cross-slot command would fail here with CROSSSLOT), and keys must spread.
 */
import crypto from 'node:crypto';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDirectory } from '../../src/store/directory.js';
import { RedisStore } from '../../src/store/redis-store.js';
import { SecretBox } from '../../src/store/secret-box.js';
import { type RedisCluster, startCluster } from '../helpers/redis.js';
import { pollUntil } from '../helpers/net.js';
import { makeEntry, runStoreContract } from './contract.js';

const box = new SecretBox([{ id: 'k1', key: crypto.randomBytes(32) }]);
const logger = pino({ level: 'silent' });
let cluster: RedisCluster;

beforeAll(async () => {
  cluster = await startCluster();
});
afterAll(async () => {
  await cluster?.stop();
});

runStoreContract('redis cluster', async () => {
  const prefix = `t${crypto.randomBytes(4).toString('hex')}`;
  const open = () => RedisStore.connect({ cluster: cluster.seeds, prefix }, box, logger);
  const store = await open();
  return { store, openPeer: open, cleanup: () => store.close() };
});

describe('Redis Cluster layout', () => {
  it('spreads per-ID and per-label keys over the masters', async () => {
    const store = await RedisStore.connect({ cluster: cluster.seeds, prefix: 'spread' }, box, logger);
    try {
      await store.createEntry(makeEntry());
      for (let i = 0; i < 30; i++) {
        await store.claimTotpStep(`id${i}`, 1, 60);
        await store.addAttempt(`id${i}`, { at: '', from: '', label: '', result: 'ok' });
      }
      const perNode = cluster.nodes.map((n) => Number(n.cli('dbsize')));
      expect(perNode.every((n) => n > 0)).toBe(true);
    } finally {
      await store.close();
    }
  });
});

describe('Redis Cluster directory', () => {
  it('advertises nodes, finds idle responders and answers client-port requests across the cluster', async () => {
    const opts = { cluster: cluster.seeds, prefix: 'dir' };
    const sa = await RedisStore.connect(opts, box, logger, 'a');
    const sb = await RedisStore.connect(opts, box, logger, 'b');
    const a = await openDirectory(sa, { self: { id: 'a', registrar: { host: '127.0.0.1', port: 1 }, clientHost: '127.0.0.1' }, heartbeatInterval: 1 });
    const b = await openDirectory(sb, {
      self: { id: 'b', registrar: { host: '127.0.0.2', port: 2 }, clientHost: '127.0.0.2' },
      heartbeatInterval: 1,
      onClientPortRequest: async (label) => (label === 'lab' ? { host: '127.0.0.2', port: 40002 } : null),
    });
    try {
      await a!.start();
      await b!.start();
      b!.setIdle('lab', 2);
      await pollUntil(async () => (await a!.findNodesFor('lab')).length === 1, 5000, 20);
      expect((await a!.listNodes()).map((n) => n.id)).toEqual(['a', 'b']);
      expect(await a!.findClientPort('lab')).toEqual({ node: 'b', host: '127.0.0.2', port: 40002 });
    } finally {
      await a?.close();
      await b?.close();
      await sa.close();
      await sb.close();
    }
  });
});
