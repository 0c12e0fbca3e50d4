/**
 * The store contract on one real redis-server (password required), each test on its own key
 * prefix; then what only Redis has: nothing secret at rest, a replay guard shared by nodes.
 */
import crypto from 'node:crypto';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RETRY_AFTER_S } from '../../src/store/redis-connection.js';
import { RedisStore } from '../../src/store/redis-store.js';
import { SecretBox } from '../../src/store/secret-box.js';
import { type RedisProcess, startRedis } from '../helpers/redis.js';
import { makeEntry, runStoreContract } from './contract.js';

const box = new SecretBox([{ id: 'k1', key: crypto.randomBytes(32) }]);
const logger = pino({ level: 'silent' });
let redis: RedisProcess;

beforeAll(async () => {
  redis = await startRedis({ password: 'pw with spaces & symbols' });
});
afterAll(async () => {
  await redis?.stop();
});

runStoreContract('redis', async () => {
  const prefix = `t${crypto.randomBytes(4).toString('hex')}`;
  const open = () => RedisStore.connect({ url: redis.url, prefix }, box, logger);
  const store = await open();
  return { store, openPeer: open, cleanup: () => store.close() };
});

describe('Redis store specifics', () => {
  it('keeps no secret in plaintext anywhere in Redis', async () => {
    const store = await RedisStore.connect(redis.url, box, logger);
    try {
      const e = makeEntry({ labels: ['atrest1'] });
      await store.createEntry(e);
      await store.updateEntry({ ...e, labels: ['atrest1', 'atrest2'] });
      await store.addAttempt(e.id, { at: new Date().toISOString(), from: '127.0.0.1', label: 'atrest1', result: 'ok' });
      await store.claimTotpStep(e.id, 1, 60);
      await store.putDoc('apikeys', 'k', { hash: 'x' });
      let dump = '';
      const keys = redis.cli('--scan').split('\n').filter(Boolean);
      expect(keys.length).toBeGreaterThan(3);
      for (const k of keys) dump += `${k}\n${redis.cli('--no-raw', 'dump', k)}\n`;
      for (const k of keys) {
        const type = redis.cli('type', k);
        const show = { string: ['get'], hash: ['hgetall'], list: ['lrange', '0', '-1'], set: ['smembers'], zset: ['zrange', '0', '-1'] }[type];
        if (show) dump += redis.cli(show[0]!, k, ...show.slice(1)) + '\n';
      }
      expect(dump).toContain(e.id);
      expect(dump).not.toContain(e.secret);
    } finally {
      await store.close();
    }
  });

  it('shares the replay guard and failure counts between two nodes', async () => {
    const prefix = `n${crypto.randomBytes(4).toString('hex')}`;
    const a = await RedisStore.connect({ url: redis.url, prefix }, box, logger, 'node-a');
    const b = await RedisStore.connect({ url: redis.url, prefix }, box, logger, 'node-b');
    try {
      expect(await a.claimTotpStep('id1', 7, 60)).toBe(true);
      expect(await b.claimTotpStep('id1', 7, 60)).toBe(false);
      // Code reuse is bounded across nodes: the count is one, in Redis.
      expect(await a.claimTotpStep('id1', 8, 60, '10.2.2.2')).toBe(true);
      expect(await b.reuseTotpStep('id1', 8, '10.2.2.2', 2)).toBe(true);
      expect(await a.reuseTotpStep('id1', 8, '10.2.2.2', 2)).toBe(true);
      expect(await b.reuseTotpStep('id1', 8, '10.2.2.2', 2)).toBe(false);
      await a.incrFailures('id1', 60);
      expect(await b.incrFailures('id1', 60)).toBe(2);
      expect(await a.incrAddressFailures('10.1.1.1', 3600)).toBe(1);
      expect(await b.incrAddressFailures('10.1.1.1', 3600)).toBe(2);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('keeps relays with different prefixes apart', async () => {
    const a = await RedisStore.connect({ url: redis.url, prefix: 'relay-a' }, box, logger);
    const b = await RedisStore.connect({ url: redis.url, prefix: 'relay-b' }, box, logger);
    try {
      await a.createEntry(makeEntry({ labels: ['same1'] }));
      await b.createEntry(makeEntry({ labels: ['same1'] }));
      expect((await a.entryForLabel('same1'))?.id).not.toBe((await b.entryForLabel('same1'))?.id);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('refuses a wrong password as unavailable, not as a crash', async () => {
    const url = redis.url.replace(/:[^@/]*@/, ':wrong@');
    const store = await RedisStore.connect(url, box, logger);
    try {
      await expect(store.ping()).rejects.toMatchObject({ code: 'TAAS_STORE_UNAVAILABLE', status: 503, retryAfter: RETRY_AFTER_S });
    } finally {
      await store.close();
    }
  });

  it('connects as an ACL user, to a chosen database, from a URL or from host/port options', async () => {
    const pw = 'pw with spaces & symbols';
    redis.cli('ACL', 'SETUSER', 'relay', 'on', '>relay:p@ss/w', '~*', '&*', '+@all');
    const viaUrl = await RedisStore.connect({ url: `redis://relay:${encodeURIComponent('relay:p@ss/w')}@127.0.0.1:${redis.port}/3`, prefix: 'acl' }, box, logger);
    const viaOptions = await RedisStore.connect({ host: '127.0.0.1', port: redis.port, password: pw, db: 3, prefix: 'acl' }, box, logger);
    try {
      const e = await viaUrl.createEntry(makeEntry({ labels: ['acl1'] }));
      expect((await viaOptions.entryForLabel('acl1'))?.id).toBe(e.id);
      expect(redis.cli('-n', '3', 'hlen', '{acl}:entries')).toBe('1');
      expect(redis.cli('-n', '0', 'exists', '{acl}:entries')).toBe('0');
    } finally {
      await viaUrl.close();
      await viaOptions.close();
    }
  });
});
