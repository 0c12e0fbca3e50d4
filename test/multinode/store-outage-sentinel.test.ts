/**
 * Issue 17 through a Sentinel failover: two nodes on a master, a replica and a real
 * redis-sentinel; under the same steady client load as store-outage.test.ts the master is
 * killed and the sentinel promotes the replica. Checks as there (outage-scenario.ts), with the
 * store's "return" being the moment the sentinel names the new master.
 *
 * Before the kill the load pauses until every pairing so far is recorded and replicated:
 * Redis replicates asynchronously, so a write the master acknowledged a moment before it died
 * may be missing on the replica, whoever wrote it. That loss belongs to Redis's replication
 * (WAIT would bound it), not to the relay; the test measures what the relay keeps.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import { stopAll, type Daemon } from '../helpers/daemon.js';
import { pollUntil } from '../helpers/net.js';
import { startSentinel, type RedisSentinelSetup } from '../helpers/redis.js';
import { KEYS, sharedFiles, startNode, type Shared } from './nodes.js';
import { redisPairings, runOutage, setUpRelay, type Relay } from './outage-scenario.js';

const PASSWORD = 'sentinel-pw';
let setup: RedisSentinelSetup;
let shared: Shared;
let a: Daemon;
let b: Daemon;
let relay: Relay | undefined;

beforeAll(async () => {
  [setup, shared] = await Promise.all([startSentinel(PASSWORD), sharedFiles()]);
  const redis = { sentinels: setup.sentinels, name: setup.name, password: PASSWORD };
  a = await startNode(redis, shared, '127.0.0.1', 'node-a');
  b = await startNode(redis, shared, '127.0.0.2', 'node-b');
  relay = await setUpRelay([a, b], shared.certFile, (node, label) => Number(setup.master.cli('hget', KEYS.nodeIdle(node), label) || 0));
});
afterAll(async () => {
  await relay?.close();
  await stopAll();
  await setup?.stop();
});

const offset = (info: string, key: string): number => Number(new RegExp(`${key}:(\\d+)`).exec(info)?.[1] ?? -1);

describe('a Sentinel failover under a steady client load', () => {
  it('serves the clients, keeps every record, keeps monitoring up, and takes registrations again within 2 s of the promotion', async () => {
    const figures = await runOutage(relay!, {
      quiesce: async (ended) => {
        const n = await ended();
        await pollUntil(() => redisPairings((...x) => setup.master.cli(...x)) === n, 10_000, 50, 'pairings recorded before the kill');
        await pollUntil(() => offset(setup.replica.cli('info', 'replication'), 'slave_repl_offset') >= offset(setup.master.cli('info', 'replication'), 'master_repl_offset'), 10_000, 20, 'replica caught up');
      },
      stop: () => setup.master.kill(),
      back: () => pollUntil(() => setup.sentinelCli('sentinel', 'get-master-addr-by-name', setup.name).includes(String(setup.replica.port)), 30_000, 20, 'the sentinel names the replica'),
      records: () => redisPairings((...x) => setup.replica.cli(...x)),
    });
    console.info(`sentinel failover figures: ${JSON.stringify(figures)}`);
  }, 90_000);
});
