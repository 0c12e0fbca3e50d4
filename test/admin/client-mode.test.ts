/**
 * An entry's per-label client mode (`clientMode`: redirect | passthrough) through the admin API,
 * on both stores: set at creation, changed by PUT and JSON Patch, kept by label changes,
 * dropped with its label, refused when it names an unknown mode or a label the entry lacks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisProcess } from '../helpers/redis.js';
import { startHarness, type Harness } from './harness.js';

let redis: RedisProcess;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

describe.each(['embedded', 'redis'])('clientMode, %s store', (store) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({}, store === 'redis' ? { redis: redis.url } : {});
  });
  afterAll(async () => {
    await h?.close();
  });
  const call = (method: string, url: string, body?: unknown, headers: Record<string, string> = {}) => h.call(method, url, { key: h.managementKey, body, headers });
  const etag = async (id: string) => (await call('GET', `/api/entries/${id}`)).headers.get('etag')!;

  it('defaults to redirect (an empty map), is set at creation and read back from the store', async () => {
    expect((await call('PUT', '/api/entries/m0', { labels: ['plain'] })).body.entry.clientMode).toEqual({});
    const r = await call('PUT', '/api/entries/m1', { labels: ['web', 'ssh'], clientMode: { web: 'passthrough' } });
    expect(r.status).toBe(201);
    expect(r.body.entry.clientMode).toEqual({ web: 'passthrough' });
    expect((await h.store.getEntry('m1'))!.clientMode).toEqual({ web: 'passthrough' });
  });

  it('JSON Patch of /clientMode; label changes keep the modes of kept labels and drop a removed one', async () => {
    const p = await call('PATCH', '/api/entries/m1', [{ op: 'add', path: '/clientMode/ssh', value: 'redirect' }], { 'content-type': 'application/json-patch+json', 'if-match': await etag('m1') });
    expect(p.status).toBe(200);
    expect(p.body.clientMode).toEqual({ web: 'passthrough', ssh: 'redirect' });
    expect((await call('POST', '/api/entries/m1/labels', { label: 'mail' })).body.clientMode).toEqual({ web: 'passthrough', ssh: 'redirect' });
    expect((await call('DELETE', '/api/entries/m1/labels/web')).body.clientMode).toEqual({ ssh: 'redirect' });
    const put = await call('PUT', '/api/entries/m1', { labels: ['ssh', 'mail'] }, { 'if-match': await etag('m1') });
    expect(put.body.clientMode).toEqual({ ssh: 'redirect' });
  });

  it('an unknown mode, or a mode for a label the entry lacks: 422 TAAS_ENTRY_INVALID, nothing written', async () => {
    const before = await h.store.getEntry('m1');
    for (const clientMode of [{ ssh: 'tunnel' }, { nope: 'passthrough' }, { ssh: 1 }]) {
      const r = await call('PUT', '/api/entries/m1', { labels: ['ssh', 'mail'], clientMode }, { 'if-match': await etag('m1') });
      expect(r.status, JSON.stringify(clientMode)).toBe(422);
      expect(r.body.errorCode).toBe('TAAS_ENTRY_INVALID');
    }
    const bad = await call('PATCH', '/api/entries/m1', [{ op: 'replace', path: '/clientMode', value: ['passthrough'] }], { 'content-type': 'application/json-patch+json', 'if-match': await etag('m1') });
    expect(bad.status).toBe(422);
    expect(await h.store.getEntry('m1')).toEqual(before);
  });
});
