/** Live state, pairings, attempts, counts, the page's status rows, health, OpenAPI and security headers. */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
  expect((await h.call('PUT', '/api/entries/cam', { key: h.managementKey, body: { labels: ['cam', 'cam2'] } })).status).toBe(201);
});
afterAll(async () => {
  await h?.close();
});

describe('live state and history', () => {
  it('reports live state per node and sums it per label in /api/status', async () => {
    h.live = [
      { nodeId: 'a', labels: [{ label: 'cam', idle: 2, pending: 1, waiting: 0, active: 1, clientPort: 40001, fixedPort: null }] },
      { nodeId: 'b', labels: [{ label: 'cam', idle: 1, pending: 0, waiting: 3, active: 0, clientPort: null, fixedPort: null }] },
    ];
    const live = await h.call('GET', '/api/live', { key: h.managementKey });
    expect(live.body).toEqual(h.live);
    await h.store.addAttempt('cam', { at: '2026-01-01T00:00:00.000Z', from: '10.0.0.1', label: 'cam', result: 'ok' });
    await h.store.addAttempt('cam', { at: '2026-01-01T00:01:00.000Z', from: '10.0.0.9', label: 'cam', result: 'bad-code' });
    await h.store.addPairing({ label: 'cam', responder: '10.0.0.1:5000', client: '10.0.0.2:6000', path: '/live', start: '2026-01-01T00:02:00.000Z', end: '2026-01-01T00:03:00.000Z', bytesUp: 10, bytesDown: 2000, reason: 'eof' });
    const status = await h.call('GET', '/api/status', { key: h.managementKey });
    expect(status.status).toBe(200);
    const row = status.body.find((r: { id: string }) => r.id === 'cam');
    expect(row.lastRegistration).toBe('2026-01-01T00:00:00.000Z');
    expect(row.lastAttempt.result).toBe('bad-code');
    expect(row.labelStates[0]).toMatchObject({ label: 'cam', idle: 3, pending: 1, waiting: 3, active: 1, clientPorts: [{ nodeId: 'a', port: 40001 }], lastPairing: '2026-01-01T00:03:00.000Z' });
    expect(row.labelStates[1]).toMatchObject({ label: 'cam2', idle: 0, lastPairing: null });
    expect(status.text).not.toContain('secret');
  });

  it('lists pairings of a label, attempts of an ID and daily counts', async () => {
    const p = await h.call('GET', '/api/labels/CAM/pairings?limit=5', { key: h.managementKey });
    expect(p.body).toEqual([expect.objectContaining({ label: 'cam', path: '/live', bytesDown: 2000 })]);
    const a = await h.call('GET', '/api/entries/cam/attempts', { key: h.managementKey });
    expect(a.body.map((x: { result: string }) => x.result)).toEqual(['bad-code', 'ok']);
    const c = await h.call('GET', '/api/counts?label=cam', { key: h.managementKey });
    expect(c.body).toEqual([expect.objectContaining({ label: 'cam', pairings: 1, bytes: 2010 })]);
    expect((await h.call('GET', '/api/labels/-x-/pairings', { key: h.managementKey })).body.errorCode).toBe('TAAS_LABEL_INVALID');
    expect((await h.call('GET', '/api/labels/cam/pairings?limit=1000', { key: h.managementKey })).status).toBe(400);
    expect((await h.call('GET', '/api/entries/ghost/attempts', { key: h.managementKey })).status).toBe(404);
  });
});

describe('health, OpenAPI, headers', () => {
  it('/healthz and /readyz answer without credentials', async () => {
    expect((await h.call('GET', '/healthz')).body).toEqual({ status: 'ok' });
    expect((await h.call('GET', '/readyz')).body).toEqual({ status: 'ready', store: 'embedded' });
  });

  it('/readyz → 503 TAAS_STORE_UNAVAILABLE when the store does not answer', async () => {
    // The embedded store is unusable when its data dir is gone: move it away for one request.
    fs.renameSync(h.dir, h.dir + '.away');
    try {
      const r = await h.call('GET', '/readyz');
      expect(r.status).toBe(503);
      expect(r.body.errorCode).toBe('TAAS_STORE_UNAVAILABLE');
    } finally {
      fs.renameSync(h.dir + '.away', h.dir);
    }
    expect((await h.call('GET', '/readyz')).status).toBe(200);
  });

  it('serves an OpenAPI 3.1 document that describes every API route', async () => {
    const r = await h.call('GET', '/api/openapi.json');
    expect(r.body.openapi).toBe('3.1.0');
    const paths = Object.keys(r.body.paths);
    for (const p of ['/api/entries', '/api/entries/{id}', '/api/entries/{id}/agent-file', '/api/entries/{id}/rotate-secret', '/api/keys', '/api/auth/session', '/api/auth/refresh', '/api/live', '/api/status', '/readyz']) expect(paths).toContain(p);
    expect(r.body.components.schemas.Error.properties.errorCode.enum).toContain('TAAS_PRECONDITION_REQUIRED');
  });

  it('the page comes with a strict CSP and no-sniff', async () => {
    const r = await h.call('GET', '/');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/text\/html/);
    expect(r.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(r.headers.get('content-security-policy')).not.toContain('upgrade-insecure-requests');
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    expect(r.headers.get('strict-transport-security')).toBeNull();
  });
});
