/**
 * The admin plane over the Redis store (a real redis-server): keys, sessions and tokens, entries
 * with conditional writes, the access log, and /readyz when Redis goes away.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollUntil } from '../helpers/net.js';
import { startRedis, type RedisProcess } from '../helpers/redis.js';
import { readManagementKey } from '../../src/admin/management-key.js';
import { startHarness, type Harness } from './harness.js';

let redis: RedisProcess;
let h: Harness;
beforeAll(async () => {
  redis = await startRedis();
  h = await startHarness({}, { redis: redis.url });
});
afterAll(async () => {
  await h?.close();
  await redis?.stop();
});

describe('admin over Redis', () => {
  it('keys, permissions and revocation', async () => {
    const k = await h.call('POST', '/api/keys', { key: h.managementKey, body: { name: 'reader', permissions: ['read'] } });
    expect(k.status).toBe(201);
    expect((await h.call('GET', '/api/entries', { key: k.body.key })).status).toBe(200);
    expect((await h.call('PUT', '/api/entries/r1', { key: k.body.key, body: { labels: ['r1'] } })).status).toBe(403);
    expect((await h.call('DELETE', `/api/keys/${k.body.id}`, { key: h.managementKey })).status).toBe(200);
    expect((await h.call('GET', '/api/entries', { key: k.body.key })).status).toBe(401);
  });

  it('entries with PUT-create, If-Match and JSON Patch', async () => {
    expect((await h.call('PUT', '/api/entries/red-1', { key: h.managementKey, body: { labels: ['red'] } })).status).toBe(201);
    expect((await h.call('PUT', '/api/entries/red-1', { key: h.managementKey, body: { labels: ['red', 'rose'] } })).status).toBe(428);
    expect((await h.call('PUT', '/api/entries/red-1', { key: h.managementKey, body: { labels: ['red', 'rose'] }, headers: { 'if-match': '"1"' } })).status).toBe(200);
    const p = await h.call('PATCH', '/api/entries/red-1', { key: h.managementKey, body: [{ op: 'remove', path: '/labels/1' }], headers: { 'content-type': 'application/json-patch+json', 'if-match': '"1"' } });
    expect(p.status).toBe(412);
  });

  it('sessions: refresh, revoke; tokens verify; the access log is kept', async () => {
    const s = await h.call('POST', '/api/auth/token', { body: { key: h.managementKey } });
    expect((await h.call('GET', '/api/live', { headers: { authorization: `Bearer ${s.body.accessToken}` } })).status).toBe(200);
    expect((await h.call('POST', '/api/auth/refresh', { body: { refreshToken: s.body.refreshToken } })).status).toBe(200);
    const sessions = await h.call('GET', '/api/sessions', { key: h.managementKey });
    for (const x of sessions.body) expect((await h.call('DELETE', `/api/sessions/${x.id}`, { key: h.managementKey })).status).toBe(204);
    expect((await h.call('POST', '/api/auth/refresh', { body: { refreshToken: s.body.refreshToken } })).status).toBe(401);
    const me = await h.call('GET', '/api/auth/session', { key: h.managementKey });
    const log = await h.call('GET', `/api/keys/${me.body.key.id}/log`, { key: h.managementKey });
    expect(log.body.length).toBeGreaterThan(3);
  });

  it('/readyz → 503 while Redis is down, 200 once it is back', async () => {
    expect((await h.call('GET', '/readyz')).status).toBe(200);
    await redis.kill();
    const down = await h.call('GET', '/readyz');
    expect(down.status).toBe(503);
    expect(down.body.errorCode).toBe('TAAS_STORE_UNAVAILABLE');
    await redis.restart();
    await pollUntil(async () => (await h.call('GET', '/readyz')).status === 200, 15_000, 100);
  });
});

describe('admin started while Redis is down', () => {
  it('starts, says not ready, and writes the management key once Redis answers', async () => {
    const r2 = await startRedis();
    await r2.kill();
    const late = await startHarness({}, { redis: r2.url });
    try {
      expect(late.managementKey).toBeNull();
      expect((await late.call('GET', '/readyz')).status).toBe(503);
      expect((await late.call('GET', '/healthz')).status).toBe(200);
      await r2.restart();
      await pollUntil(() => fs.existsSync(path.join(late.dir, 'admin.key')), 15_000, 50);
      const key = readManagementKey(late.dir)!;
      expect((await late.call('GET', '/api/entries', { key })).status).toBe(200);
      expect((await late.call('GET', '/readyz')).status).toBe(200);
    } finally {
      await late.close();
      await r2.stop();
    }
  });
});
