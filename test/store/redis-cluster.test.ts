/**
 * The store contract on a real 3-master Redis Cluster: every operation must stay within one
 * hash slot (a cross-slot command would fail here with CROSSSLOT), and keys must spread.
 */
import crypto from 'node:crypto';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisStore } from '../../src/store/redis-store.js';
import { SecretBox } from '../../src/store/secret-box.js';
import { type RedisCluster, startCluster } from '../helpers/redis.js';
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
