/**
 * The end-to-end suites of the single-node issue, unchanged, against daemons on the Redis store.
 * Each suite is imported inside its own describe, after a hook that starts a real redis-server
 * for it and sets TAAS_REDIS (the daemon's environment override of `redis`, inherited by every
 * daemon and CLI the suite spawns through test/helpers/daemon.ts). A last test per suite checks
 * that the suite's entries really went to that Redis, so a suite silently run on the embedded
 * store fails here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisProcess } from '../helpers/redis.js';
import { KEYS } from './nodes.js';

/**
 * The core suites of test/e2e: registration, curl through the 307 and the pairings record
 * (curl); every status code, lock-out and GET /pairings (status-codes). The others (pairing
 * volume, restart, allocated port) exercise the relay rather than the store, and would double
 * this folder's time.
 */
const SUITES: Record<string, () => Promise<unknown>> = {
  curl: () => import('../e2e/curl.test.js'),
  'status-codes': () => import('../e2e/status-codes.test.js'),
};

for (const [suite, load] of Object.entries(SUITES)) {
  describe(`e2e/${suite} on the Redis store`, async () => {
    let redis: RedisProcess;
    beforeAll(async () => {
      redis = await startRedis();
      process.env.TAAS_REDIS = redis.url;
    });
    // Registered after the hook above, so the suite's own beforeAll (which starts its daemon) runs second.
    await load();
    it('kept its entries in this Redis', () => {
      expect(Number(redis.cli('hlen', KEYS.entries))).toBeGreaterThan(0);
    });
    // After hooks run last-registered first: the suite stops its daemons before Redis goes.
    afterAll(async () => {
      delete process.env.TAAS_REDIS;
      await redis?.stop();
    });
  });
}
