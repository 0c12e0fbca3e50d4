/** JSON Patch (RFC 6902) on entries: media type, preconditions, failed tests, read-only members, broken results. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './harness.js';

let h: Harness;
const PATCH = 'application/json-patch+json';
beforeAll(async () => {
  h = await startHarness();
  expect((await h.call('PUT', '/api/entries/p1', { key: h.managementKey, body: { labels: ['alpha'] } })).status).toBe(201);
  expect((await h.call('PUT', '/api/entries/p2', { key: h.managementKey, body: { labels: ['beta'] } })).status).toBe(201);
});
afterAll(async () => {
  await h?.close();
});

async function etag(id: string): Promise<string> {
  return (await h.call('GET', `/api/entries/${id}`, { key: h.managementKey })).headers.get('etag')!;
}

function patch(id: string, ops: unknown, headers: Record<string, string> = {}) {
  return h.call('PATCH', `/api/entries/${id}`, { key: h.managementKey, body: ops, headers: { 'content-type': PATCH, ...headers } });
}

describe('PATCH /api/entries/:id', () => {
  it('applies a patch with If-Match and bumps the ETag', async () => {
    const r = await patch('p1', [{ op: 'add', path: '/labels/-', value: 'gamma' }], { 'if-match': await etag('p1') });
    expect(r.status).toBe(200);
    expect(r.body.labels).toEqual(['alpha', 'gamma']);
    expect(r.headers.get('etag')).toBe(`"${r.body.version}"`);
  });

  it('any other media type → 415', async () => {
    for (const type of ['application/json', 'text/plain', 'application/merge-patch+json']) {
      const r = await h.call('PATCH', '/api/entries/p1', { key: h.managementKey, raw: '[]', headers: { 'content-type': type, 'if-match': await etag('p1') } });
      expect(r.status, type).toBe(415);
      expect(r.body.errorCode, type).toBe('TAAS_UNSUPPORTED_MEDIA_TYPE');
    }
  });

  it('no precondition → 428; stale → 412', async () => {
    expect((await patch('p1', [{ op: 'add', path: '/labels/-', value: 'delta' }])).status).toBe(428);
    const r = await patch('p1', [{ op: 'add', path: '/labels/-', value: 'delta' }], { 'if-match': '"1"' });
    expect(r.status).toBe(412);
  });

  it('a failing test op, a bad path or a read-only member → 422 TAAS_PATCH_INVALID', async () => {
    const tag = await etag('p1');
    const cases = [
      [{ op: 'test', path: '/labels/0', value: 'zzz' }, { op: 'add', path: '/labels/-', value: 'delta' }],
      [{ op: 'remove', path: '/labels/9' }],
      [{ op: 'replace', path: '/id', value: 'other' }],
      [{ op: 'replace', path: '/version', value: 99 }],
      [{ op: 'add', path: '/secret', value: 'AAAAAAAAAAAAAAAA' }],
    ];
    for (const ops of cases) {
      const r = await patch('p1', ops, { 'if-match': tag });
      expect(r.status, JSON.stringify(ops)).toBe(422);
      expect(r.body.errorCode, JSON.stringify(ops)).toBe('TAAS_PATCH_INVALID');
    }
    expect(await etag('p1')).toBe(tag);
  });

  it('a patch that would break the entry → 422 TAAS_ENTRY_INVALID, or 409 for a label of another entry', async () => {
    const tag = await etag('p1');
    const empty = await patch('p1', [{ op: 'replace', path: '/labels', value: [] }], { 'if-match': tag });
    expect(empty.status).toBe(422);
    expect(empty.body.errorCode).toBe('TAAS_ENTRY_INVALID');
    const notList = await patch('p1', [{ op: 'replace', path: '/labels', value: 'alpha' }], { 'if-match': tag });
    expect(notList.status).toBe(422);
    expect(notList.body.errorCode).toBe('TAAS_ENTRY_INVALID');
    const port = await patch('p1', [{ op: 'add', path: '/clientPorts/alpha', value: 'ssh' }], { 'if-match': tag });
    expect(port.status).toBe(422);
    const taken = await patch('p1', [{ op: 'add', path: '/labels/-', value: 'beta' }], { 'if-match': tag });
    expect(taken.status).toBe(409);
    expect(taken.body.errorCode).toBe('TAAS_LABEL_TAKEN');
    expect(await etag('p1')).toBe(tag);
  });

  it('a body that is not a patch document → 400', async () => {
    const tag = await etag('p1');
    const notArray = await patch('p1', { op: 'add' }, { 'if-match': tag });
    expect(notArray.status).toBe(400);
    const notJson = await h.call('PATCH', '/api/entries/p1', { key: h.managementKey, raw: '[{', headers: { 'content-type': PATCH, 'if-match': tag } });
    expect(notJson.status).toBe(400);
    expect(notJson.body.errorCode).toBe('TAAS_BAD_REQUEST');
  });

  it('a test op that holds lets the patch through (optimistic concurrency inside the patch)', async () => {
    const r = await patch('p1', [{ op: 'test', path: '/labels/0', value: 'alpha' }, { op: 'add', path: '/clientPorts/alpha', value: 2222 }], { 'if-match': await etag('p1') });
    expect(r.status).toBe(200);
    expect(r.body.clientPorts).toEqual({ alpha: 2222 });
  });
});
