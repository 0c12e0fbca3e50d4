/** Entries over real HTTP: create with PUT/POST, reads without secrets, conditional replace, delete. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

const ID = '6a1f4c1e-2b7d-4b8e-9f1a-0c2d3e4f5a6b';

describe('entries', () => {
  it('PUT on a new ID creates it (201) and shows the secret once', async () => {
    const r = await h.call('PUT', `/api/entries/${ID}`, { key: h.managementKey, body: { labels: ['Kitchen'] } });
    expect(r.status).toBe(201);
    expect(r.headers.get('location')).toBe(`/api/entries/${ID}`);
    expect(r.headers.get('etag')).toBe('"1"');
    expect(r.headers.get('cache-control')).toBe('no-store');
    expect(r.body.entry).toMatchObject({ id: ID, labels: ['kitchen'], version: 1 });
    expect(r.body.secret).toMatch(/^[A-Z2-7]{16,}$/);
    expect(r.body.otpauthUri).toMatch(/^otpauth:\/\/totp\//);
    expect(r.body.qr).toMatch(/^data:image\/svg\+xml;base64,/);
    expect(r.body.agentFile).toMatchObject({ id: ID, secret: r.body.secret, labels: ['kitchen'] });
    expect(r.body.entry.secret).toBeUndefined();

    const list = await h.call('GET', '/api/entries', { key: h.managementKey });
    expect(list.status).toBe(200);
    expect(list.body).toEqual([expect.objectContaining({ id: ID, labels: ['kitchen'] })]);
    expect(list.text).not.toContain(r.body.secret);
    const one = await h.call('GET', `/api/entries/${ID}`, { key: h.managementKey });
    expect(one.text).not.toContain(r.body.secret);
    expect(one.headers.get('etag')).toBe('"1"');
    // Without no-store a browser reuses a GET heuristically from Last-Modified and shows stale data.
    expect(one.headers.get('cache-control')).toBe('no-store');
    expect(one.headers.get('last-modified')).toBe(new Date(one.body.updatedAt).toUTCString());
  });

  it('takes IDs up to the protocol limit of 128 characters', async () => {
    const long = 'a'.repeat(128);
    const r = await h.call('PUT', `/api/entries/${long}`, { key: h.managementKey, body: { labels: ['long-one'] } });
    expect(r.status).toBe(201);
    expect((await h.call('GET', `/api/entries/${long}`, { key: h.managementKey })).body.id).toBe(long);
    expect((await h.call('DELETE', `/api/entries/${long}`, { key: h.managementKey })).status).toBe(204);
  });

  it('POST creates with a server-chosen UUID', async () => {
    const r = await h.call('POST', '/api/entries', { key: h.managementKey, body: { labels: ['garage'] } });
    expect(r.status).toBe(201);
    expect(r.body.entry.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.headers.get('location')).toBe(`/api/entries/${r.body.entry.id}`);
  });

  it('replacing needs a precondition: missing → 428, stale ETag → 412, current → 200', async () => {
    const none = await h.call('PUT', `/api/entries/${ID}`, { key: h.managementKey, body: { labels: ['kitchen', 'oven'] } });
    expect(none.status).toBe(428);
    expect(none.body.errorCode).toBe('TAAS_PRECONDITION_REQUIRED');
    const stale = await h.call('PUT', `/api/entries/${ID}`, { key: h.managementKey, body: { labels: ['kitchen', 'oven'] }, headers: { 'if-match': '"7"' } });
    expect(stale.status).toBe(412);
    expect(stale.body.errorCode).toBe('TAAS_PRECONDITION_FAILED');
    const ok = await h.call('PUT', `/api/entries/${ID}`, { key: h.managementKey, body: { labels: ['kitchen', 'oven'] }, headers: { 'if-match': '"1"' } });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ labels: ['kitchen', 'oven'], version: 2 });
    expect(ok.headers.get('etag')).toBe('"2"');
    // The ETag just used is now stale: a second writer holding it loses.
    const again = await h.call('PUT', `/api/entries/${ID}`, { key: h.managementKey, body: { labels: ['kitchen'] }, headers: { 'if-match': '"1"' } });
    expect(again.status).toBe(412);
  });

  it('If-Unmodified-Since: before the change → 412, at or after it → 200', async () => {
    const cur = await h.call('GET', `/api/entries/${ID}`, { key: h.managementKey });
    const modified = Date.parse(cur.headers.get('last-modified')!);
    const stale = await h.call('PUT', `/api/entries/${ID}`, { key: h.managementKey, body: { labels: ['kitchen', 'oven'] }, headers: { 'if-unmodified-since': new Date(modified - 60_000).toUTCString() } });
    expect(stale.status).toBe(412);
    const ok = await h.call('PUT', `/api/entries/${ID}`, { key: h.managementKey, body: { labels: ['kitchen', 'oven', 'fridge'] }, headers: { 'if-unmodified-since': cur.headers.get('last-modified')! } });
    expect(ok.status).toBe(200);
    expect(ok.body.labels).toEqual(['kitchen', 'oven', 'fridge']);
  });

  it('If-Match on an ID that does not exist → 412; If-None-Match: * on one that does → 412', async () => {
    const a = await h.call('PUT', '/api/entries/nope-1', { key: h.managementKey, body: { labels: ['nope'] }, headers: { 'if-match': '"1"' } });
    expect(a.status).toBe(412);
    const b = await h.call('PUT', `/api/entries/${ID}`, { key: h.managementKey, body: { labels: ['kitchen'] }, headers: { 'if-none-match': '*' } });
    expect(b.status).toBe(412);
  });

  it('refuses bad bodies with the error body', async () => {
    const taken = await h.call('PUT', '/api/entries/other-1', { key: h.managementKey, body: { labels: ['kitchen'] } });
    expect(taken.status).toBe(409);
    expect(taken.body).toEqual({ errorCode: 'TAAS_LABEL_TAKEN', errorMsg: expect.stringContaining('kitchen') });
    const badLabel = await h.call('PUT', '/api/entries/other-1', { key: h.managementKey, body: { labels: ['-bad-'] } });
    expect(badLabel.status).toBe(400);
    expect(badLabel.body.errorCode).toBe('TAAS_LABEL_INVALID');
    const extra = await h.call('PUT', '/api/entries/other-1', { key: h.managementKey, body: { labels: ['x1'], secret: 'AAAA' } });
    expect(extra.status).toBe(400);
    expect(extra.body.errorCode).toBe('TAAS_BAD_REQUEST');
    const notJson = await h.call('PUT', '/api/entries/other-1', { key: h.managementKey, raw: '{nope', headers: { 'content-type': 'application/json' } });
    expect(notJson.status).toBe(400);
    expect(notJson.body.errorCode).toBe('TAAS_BAD_REQUEST');
    const missing = await h.call('GET', '/api/entries/nobody', { key: h.managementKey });
    expect(missing.status).toBe(404);
    expect(missing.body.errorCode).toBe('TAAS_ENTRY_NOT_FOUND');
    const noRoute = await h.call('GET', '/api/nothing-here', { key: h.managementKey });
    expect(noRoute.status).toBe(404);
    expect(noRoute.body.errorCode).toBe('TAAS_NOT_FOUND');
  });

  it('adds and removes labels, rotates the secret, serves the agent file', async () => {
    const add = await h.call('POST', `/api/entries/${ID}/labels`, { key: h.managementKey, body: { label: 'porch' } });
    expect(add.status).toBe(200);
    expect(add.body.labels).toContain('porch');
    const rm = await h.call('DELETE', `/api/entries/${ID}/labels/porch`, { key: h.managementKey });
    expect(rm.status).toBe(200);
    expect(rm.body.labels).not.toContain('porch');

    const file1 = await h.call('GET', `/api/entries/${ID}/agent-file`, { key: h.managementKey });
    expect(file1.status).toBe(200);
    expect(file1.headers.get('content-disposition')).toBe(`attachment; filename="taas-agent-${ID}.json"`);
    const rot = await h.call('POST', `/api/entries/${ID}/rotate-secret`, { key: h.managementKey });
    expect(rot.status).toBe(200);
    expect(rot.body.secret).not.toBe(file1.body.secret);
    const file2 = await h.call('GET', `/api/entries/${ID}/agent-file`, { key: h.managementKey });
    expect(file2.body.secret).toBe(rot.body.secret);
    expect(file2.body.labels).toEqual(rot.body.entry.labels);
  });

  it('DELETE removes (204), then 404; a stale If-Match on DELETE → 412', async () => {
    const c = await h.call('PUT', '/api/entries/doomed', { key: h.managementKey, body: { labels: ['doomed'] } });
    expect(c.status).toBe(201);
    expect((await h.call('DELETE', '/api/entries/doomed', { key: h.managementKey, headers: { 'if-match': '"9"' } })).status).toBe(412);
    expect((await h.call('DELETE', '/api/entries/doomed', { key: h.managementKey })).status).toBe(204);
    expect((await h.call('DELETE', '/api/entries/doomed', { key: h.managementKey })).status).toBe(404);
  });
});
