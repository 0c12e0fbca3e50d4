/**
 * Sentinel: the store finds the master through a real redis-sentinel, and after the master is
 * killed and the sentinel promotes the replica, carries on with no restart (503 meanwhile).
 */
import crypto from 'node:crypto';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isTaasError } from '../../src/errors.js';
import { RedisStore } from '../../src/store/redis-store.js';
import { SecretBox } from '../../src/store/secret-box.js';
import { pollUntil } from '../helpers/net.js';
import { type RedisSentinelSetup, startSentinel } from '../helpers/redis.js';
import { makeEntry } from './contract.js';

const box = new SecretBox([{ id: 'k1', key: crypto.randomBytes(32) }]);
const logger = pino({ level: 'silent' });
let setup: RedisSentinelSetup;

// A fresh master, replica and sentinel per test: each test changes who is master.
beforeEach(async () => {
  setup = await startSentinel('sentinel-pw');
});
afterEach(async () => {
  await setup?.stop();
});

describe('Redis store through Sentinel', () => {
  it('uses the master the sentinel names, and follows a failover', async () => {
    const store = await RedisStore.connect({ sentinels: setup.sentinels, name: setup.name, password: 'sentinel-pw' }, box, logger);
    try {
      const e = await store.createEntry(makeEntry({ labels: ['sent1'] }));
      expect(setup.master.cli('hlen', '{taas}:entries')).toBe('1');
      // Replicated before the master dies, so the promoted replica holds the entry.
      await pollUntil(() => setup.replica.cli('hlen', '{taas}:entries') === '1', 5000, 20);

      await setup.master.kill();
      const t0 = performance.now();
      // Meanwhile every call fails fast (503), none hangs.
      await pollUntil(
        async () => {
          const c0 = performance.now();
          try {
            await store.putDoc('probe', 'k', 1);
            return true;
          } catch (err) {
            expect(isTaasError(err, 'TAAS_STORE_UNAVAILABLE')).toBe(true);
            expect(performance.now() - c0).toBeLessThan(2000);
            return false;
          }
        },
        30_000,
        100,
      );
      const failover = performance.now() - t0;
      expect(/role:master/.test(setup.replica.cli('info', 'replication'))).toBe(true);
      expect((await store.entryForLabel('sent1'))?.id).toBe(e.id);
      console.log(`sentinel failover: store writable again ${Math.round(failover)} ms after the master died`);
    } finally {
      await store.close();
    }
  });
});
