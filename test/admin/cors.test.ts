/** CORS: preflights answered for origins an active key allows, not for foreign ones; requests checked per key. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './harness.js';

let h: Harness;
let key: string;
const ALLOWED = 'https://ops.example.com';
const FOREIGN = 'https://evil.example.net';

beforeAll(async () => {
  h = await startHarness();
  const r = await h.call('POST', '/api/keys', { key: h.managementKey, body: { name: 'dashboard', permissions: ['read', 'write'], origins: [ALLOWED + '/'] } });
  expect(r.status).toBe(201);
  expect(r.body.origins).toEqual([ALLOWED]);
  key = r.body.key;
});
afterAll(async () => {
  await h?.close();
});

function preflight(origin: string, method = 'PUT') {
  return h.call('OPTIONS', '/api/entries/x', { headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': 'x-api-key, content-type, if-match' } });
}

describe('CORS', () => {
  it('a preflight from an allowed origin is answered with that origin and the headers the API needs', async () => {
    const r = await preflight(ALLOWED);
    expect(r.status).toBe(204);
    expect(r.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    expect(r.headers.get('access-control-allow-methods')).toContain('PATCH');
    expect(r.headers.get('access-control-allow-headers')!.toLowerCase()).toContain('x-api-key');
    expect(r.headers.get('access-control-allow-headers')!.toLowerCase()).toContain('if-match');
    expect(r.headers.get('access-control-allow-credentials')).toBeNull();
  });

  it('a preflight from a foreign origin gets no CORS grant', async () => {
    const r = await preflight(FOREIGN);
    expect(r.headers.get('access-control-allow-origin')).toBeNull();
    expect(r.headers.get('access-control-allow-methods')).toBeNull();
  });

  it('a request from the allowed origin with its key works and exposes ETag; from a foreign origin → 403', async () => {
    const ok = await h.call('PUT', '/api/entries/cors1', { key, body: { labels: ['cors1'] }, headers: { origin: ALLOWED } });
    expect(ok.status).toBe(201);
    expect(ok.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    expect(ok.headers.get('access-control-expose-headers')!.toLowerCase()).toContain('etag');
    const foreign = await h.call('GET', '/api/entries', { key, headers: { origin: FOREIGN } });
    expect(foreign.status).toBe(403);
    expect(foreign.body.errorCode).toBe('TAAS_FORBIDDEN');
    // The management key lists no origin: no browser page elsewhere may use it.
    const mgmt = await h.call('GET', '/api/entries', { key: h.managementKey, headers: { origin: ALLOWED } });
    expect(mgmt.status).toBe(403);
  });

  it('an origin stops being granted once its key is revoked', async () => {
    const r = await h.call('POST', '/api/keys', { key: h.managementKey, body: { name: 'temp', permissions: ['read'], origins: ['http://temp.example:8080'] } });
    expect((await preflight('http://temp.example:8080', 'GET')).headers.get('access-control-allow-origin')).toBe('http://temp.example:8080');
    await h.call('DELETE', `/api/keys/${r.body.id}`, { key: h.managementKey });
    expect((await preflight('http://temp.example:8080', 'GET')).headers.get('access-control-allow-origin')).toBeNull();
  });
});
