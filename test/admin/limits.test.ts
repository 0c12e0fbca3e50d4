/**
 * The attacker's side of the admin API: oversized bodies, sign-in guessing, prototype names as
 * IDs, poisoned JSON. Each is refused with the error body, and the server keeps answering.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

describe('admin limits', () => {
  it('a body over 64 KiB → 413 with the error body, before authentication', async () => {
    const r = await h.call('POST', '/api/auth/session', { body: { key: 'x'.repeat(70 * 1024) } });
    expect(r.status).toBe(413);
    expect(r.body.errorCode).toBe('TAAS_BAD_REQUEST');
  });

  it('JSON with __proto__ or constructor.prototype → 400', async () => {
    const a = await h.call('PUT', '/api/entries/p1', { key: h.managementKey, raw: '{"labels":["p1"],"__proto__":{"admin":true}}', headers: { 'content-type': 'application/json' } });
    expect(a.status).toBe(400);
    expect(a.body.errorCode).toBe('TAAS_BAD_REQUEST');
    const b = await h.call('POST', '/api/keys', { key: h.managementKey, raw: '{"name":"x","permissions":["read"],"constructor":{"prototype":{"x":1}}}', headers: { 'content-type': 'application/json' } });
    expect(b.status).toBe(400);
  });

  it('a malformed URL gets the error body too', async () => {
    const r = await h.call('GET', '/api/entries/%E0%A4%A', { key: h.managementKey });
    expect(r.status).toBe(400);
    expect(r.body.errorCode).toBe('TAAS_BAD_REQUEST');
  });

  it('prototype names as IDs are plain unknown IDs', async () => {
    for (const id of ['__proto__', 'constructor', 'hasOwnProperty', 'toString']) {
      expect((await h.call('GET', `/api/keys/${id}`, { key: h.managementKey })).status, id).toBe(404);
      expect((await h.call('GET', `/api/keys/${id}/log`, { key: h.managementKey })).status, id).toBe(404);
      expect((await h.call('DELETE', `/api/sessions/${id}`, { key: h.managementKey })).status, id).toBe(404);
      expect((await h.call('DELETE', `/api/keys/${id}`, { key: h.managementKey })).status, id).toBe(404);
      expect((await h.call('POST', '/api/auth/refresh', { body: { refreshToken: `${id}.x` } })).status, id).toBe(401);
    }
  });

  it('guessing keys at sign-in is rate limited: 429 with Retry-After', async () => {
    let last = { status: 0, headers: new Headers(), body: null as any };
    for (let i = 0; i < 25 && last.status !== 429; i++) last = await h.call('POST', '/api/auth/session', { body: { key: `taas_guess${i}` } });
    expect(last.status).toBe(429);
    expect(last.body.errorCode).toBe('TAAS_RATE_LIMITED');
    expect(Number(last.headers.get('retry-after'))).toBeGreaterThan(0);
    // Other routes are not affected by the sign-in limit.
    expect((await h.call('GET', '/api/entries', { key: h.managementKey })).status).toBe(200);
  });
});
