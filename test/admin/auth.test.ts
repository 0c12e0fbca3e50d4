/**
 * Who may do what: API key permissions, expiry and revocation, the management key file, page
 * sessions (cookies, CSRF, refresh, revocation), tokens verifiable with the published public key.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

async function newKey(permissions: string[], extra: Record<string, unknown> = {}): Promise<{ key: string; id: string }> {
  const r = await h.call('POST', '/api/keys', { key: h.managementKey, body: { name: `k-${permissions.join('-')}`, permissions, ...extra } });
  expect(r.status).toBe(201);
  return { key: r.body.key, id: r.body.id };
}

/** Cookies from Set-Cookie headers, as name → value. */
function cookiesOf(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of headers.getSetCookie()) {
    const [pair] = c.split(';');
    const i = pair!.indexOf('=');
    out[pair!.slice(0, i)] = pair!.slice(i + 1);
  }
  return out;
}

describe('API keys', () => {
  it('first start writes admin.key 0600 holding a key with every permission', async () => {
    const st = fs.statSync(path.join(h.dir, 'admin.key'));
    expect(st.mode & 0o777).toBe(0o600);
    expect(h.managementKey).toMatch(/^taas_[A-Za-z0-9]{16}_[A-Za-z0-9_-]{43}$/);
    const me = await h.call('GET', '/api/auth/session', { key: h.managementKey });
    expect(me.body.key.permissions).toEqual(['read', 'write', 'keys']);
    expect(me.body.key.management).toBe(true);
    expect(fs.statSync(path.join(h.dir, 'admin-signing.jwk')).mode & 0o777).toBe(0o600);
  });

  it('no credentials → 401 TAAS_ADMIN_AUTH_REQUIRED; an unknown key → 401 TAAS_ADMIN_AUTH_INVALID', async () => {
    const none = await h.call('GET', '/api/entries');
    expect(none.status).toBe(401);
    expect(none.body.errorCode).toBe('TAAS_ADMIN_AUTH_REQUIRED');
    const wrong = await h.call('GET', '/api/entries', { key: h.managementKey.slice(0, -4) + 'AAAA' });
    expect(wrong.status).toBe(401);
    expect(wrong.body.errorCode).toBe('TAAS_ADMIN_AUTH_INVALID');
    const junk = await h.call('GET', '/api/entries', { headers: { authorization: 'Bearer taas_junk' } });
    expect(junk.status).toBe(401);
  });

  it('a read key reads but cannot write (403) nor manage keys (403)', async () => {
    const { key } = await newKey(['read']);
    expect((await h.call('GET', '/api/entries', { key })).status).toBe(200);
    const w = await h.call('PUT', '/api/entries/r1', { key, body: { labels: ['r1'] } });
    expect(w.status).toBe(403);
    expect(w.body.errorCode).toBe('TAAS_FORBIDDEN');
    expect((await h.call('GET', '/api/keys', { key })).status).toBe(403);
    // The agent file holds the TOTP secret: it needs write.
    expect((await h.call('PUT', '/api/entries/r1', { key: h.managementKey, body: { labels: ['r1'] } })).status).toBe(201);
    expect((await h.call('GET', '/api/entries/r1/agent-file', { key })).status).toBe(403);
    // Authorization: Bearer works like X-API-Key.
    expect((await h.call('GET', '/api/entries', { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
  });

  it('a key grants only permissions it holds', async () => {
    const { key } = await newKey(['keys']);
    const r = await h.call('POST', '/api/keys', { key, body: { name: 'escalate', permissions: ['write'] } });
    expect(r.status).toBe(403);
    expect((await h.call('POST', '/api/keys', { key, body: { name: 'peer', permissions: ['keys'] } })).status).toBe(201);
  });

  it('an expired key → 401', async () => {
    const { key } = await newKey(['read'], { expiresAt: new Date(Date.now() - 1000).toISOString() });
    const r = await h.call('GET', '/api/entries', { key });
    expect(r.status).toBe(401);
    expect(r.body).toEqual({ errorCode: 'TAAS_ADMIN_AUTH_INVALID', errorMsg: expect.stringContaining('expired') });
    const list = await h.call('GET', '/api/keys', { key: h.managementKey });
    expect(list.body.find((k: { expiresAt: string | null; state: string }) => k.state === 'expired')).toBeTruthy();
  });

  it('a revoked key → 401; the list shows it revoked, never a hash or a key', async () => {
    const { key, id } = await newKey(['read']);
    expect((await h.call('GET', '/api/entries', { key })).status).toBe(200);
    const rv = await h.call('DELETE', `/api/keys/${id}`, { key: h.managementKey });
    expect(rv.status).toBe(200);
    expect(rv.body.state).toBe('revoked');
    expect((await h.call('GET', '/api/entries', { key })).status).toBe(401);
    const list = await h.call('GET', '/api/keys', { key: h.managementKey });
    expect(list.body.find((k: { id: string }) => k.id === id)).toMatchObject({ state: 'revoked', lastUsedAt: expect.any(String) });
    expect(list.text).not.toContain('"hash"');
    expect(list.text).not.toContain(key.slice('taas_'.length + 17)); // the secret part (it may itself contain '_')
    expect((await h.call('DELETE', '/api/keys/nosuchkey', { key: h.managementKey })).status).toBe(404);
  });

  it('bad key bodies → 400', async () => {
    for (const body of [{ name: '', permissions: ['read'] }, { name: 'x', permissions: [] }, { name: 'x', permissions: ['root'] }, { name: 'x', permissions: ['read'], expiresAt: 'soon' }, { name: 'x', permissions: ['read'], origins: ['https://a.example/path'] }]) {
      const r = await h.call('POST', '/api/keys', { key: h.managementKey, body });
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.errorCode).toBe('TAAS_BAD_REQUEST');
    }
  });

  it('keeps a capped access log per key', async () => {
    const { key, id } = await newKey(['read', 'write']);
    await h.call('GET', '/api/entries', { key });
    await h.call('PUT', '/api/entries/logged', { key, body: { labels: ['logged'] } });
    await h.call('GET', '/api/keys', { key });
    const log = await h.call('GET', `/api/keys/${id}/log`, { key: h.managementKey });
    expect(log.status).toBe(200);
    expect(log.body.map((r: { method: string; path: string; status: number }) => `${r.method} ${r.path} ${r.status}`)).toEqual(['GET /api/keys 403', 'PUT /api/entries/logged 201', 'GET /api/entries 200']);
    for (let i = 0; i < 110; i++) await h.call('GET', '/api/live', { key });
    const capped = await h.call('GET', `/api/keys/${id}/log`, { key: h.managementKey });
    expect(capped.body).toHaveLength(100);
    expect(capped.body[0].path).toBe('/api/live');
  });
});

describe('sessions', () => {
  async function signIn(key: string) {
    const r = await h.call('POST', '/api/auth/session', { body: { key } });
    expect(r.status).toBe(200);
    return { ...cookiesOf(r.headers), csrf: r.body.csrf as string, setCookie: r.headers.getSetCookie(), body: r.body };
  }
  const withCookies = (c: Record<string, string>, names = ['taas_at', 'taas_rt']) => names.filter((n) => c[n]).map((n) => `${n}=${c[n]}`).join('; ');

  it('sign-in sets HttpOnly SameSite=Strict cookies; the access token is an ES256 JWT verifiable with the JWKS', async () => {
    const s = await signIn(h.managementKey);
    const at = s.setCookie.find((c) => c.startsWith('taas_at='))!;
    const rt = s.setCookie.find((c) => c.startsWith('taas_rt='))!;
    expect(at).toMatch(/HttpOnly/);
    expect(at).toMatch(/SameSite=Strict/);
    expect(at).toMatch(/Path=\/api/);
    expect(at).not.toMatch(/Secure/); // plain HTTP here; Secure under TLS
    expect(rt).toMatch(/HttpOnly/);
    expect(rt).toMatch(/Path=\/api\/auth/);
    const jwks = await h.call('GET', '/api/auth/jwks.json');
    const { payload, protectedHeader } = await jwtVerify(s.taas_at!, createLocalJWKSet(jwks.body));
    expect(protectedHeader.alg).toBe('ES256');
    expect(payload.exp! - payload.iat!).toBe(300);
    expect(jwks.text).not.toContain('"d"');
  });

  it('cookie reads work; cookie writes need the X-CSRF-Token of the session', async () => {
    const s = await signIn(h.managementKey);
    const cookie = withCookies(s);
    expect((await h.call('GET', '/api/entries', { headers: { cookie } })).status).toBe(200);
    const noCsrf = await h.call('PUT', '/api/entries/c1', { body: { labels: ['c1'] }, headers: { cookie } });
    expect(noCsrf.status).toBe(403);
    expect(noCsrf.body.errorCode).toBe('TAAS_CSRF_FAILED');
    const wrong = await h.call('PUT', '/api/entries/c1', { body: { labels: ['c1'] }, headers: { cookie, 'x-csrf-token': 'x' + s.csrf } });
    expect(wrong.status).toBe(403);
    const ok = await h.call('PUT', '/api/entries/c1', { body: { labels: ['c1'] }, headers: { cookie, 'x-csrf-token': s.csrf } });
    expect(ok.status).toBe(201);
  });

  it('refresh gives a new access token; a revoked refresh token gives none, and its access token stops working', async () => {
    const s = await signIn(h.managementKey);
    const r1 = await h.call('POST', '/api/auth/refresh', { headers: { cookie: withCookies(s, ['taas_rt']) } });
    expect(r1.status).toBe(200);
    expect(cookiesOf(r1.headers).taas_at).toBeTruthy();
    const sessions = await h.call('GET', '/api/sessions', { key: h.managementKey });
    expect(sessions.body.map((x: { id: string }) => x.id)).toContain(s.body.sessionId);
    expect(sessions.text).not.toContain(s.csrf);
    expect((await h.call('DELETE', `/api/sessions/${s.body.sessionId}`, { key: h.managementKey })).status).toBe(204);
    const r2 = await h.call('POST', '/api/auth/refresh', { headers: { cookie: withCookies(s, ['taas_rt']) } });
    expect(r2.status).toBe(401);
    expect(r2.body.errorCode).toBe('TAAS_ADMIN_AUTH_INVALID');
    expect(cookiesOf(r2.headers).taas_at).toBeUndefined();
    expect((await h.call('GET', '/api/entries', { headers: { cookie: withCookies(s, ['taas_at']) } })).status).toBe(401);
  });

  it('sign-out revokes the session; signing in with a bad key → 401', async () => {
    const s = await signIn(h.managementKey);
    const out = await h.call('DELETE', '/api/auth/session', { headers: { cookie: withCookies(s), 'x-csrf-token': s.csrf } });
    expect(out.status).toBe(204);
    expect((await h.call('POST', '/api/auth/refresh', { headers: { cookie: withCookies(s, ['taas_rt']) } })).status).toBe(401);
    const bad = await h.call('POST', '/api/auth/session', { body: { key: 'taas_nope' } });
    expect(bad.status).toBe(401);
    expect(bad.body.errorCode).toBe('TAAS_ADMIN_AUTH_INVALID');
  });

  it('revoking a key ends its sessions at once', async () => {
    const { key, id } = await newKey(['read']);
    const s = await signIn(key);
    expect((await h.call('GET', '/api/entries', { headers: { cookie: withCookies(s) } })).status).toBe(200);
    await h.call('DELETE', `/api/keys/${id}`, { key: h.managementKey });
    expect((await h.call('GET', '/api/entries', { headers: { cookie: withCookies(s) } })).status).toBe(401);
    expect((await h.call('POST', '/api/auth/refresh', { headers: { cookie: withCookies(s, ['taas_rt']) } })).status).toBe(401);
  });

  it('scripts get tokens in the body and use Authorization: Bearer', async () => {
    const t = await h.call('POST', '/api/auth/token', { body: { key: h.managementKey } });
    expect(t.status).toBe(200);
    expect((await h.call('GET', '/api/entries', { headers: { authorization: `Bearer ${t.body.accessToken}` } })).status).toBe(200);
    // No CSRF for a bearer token: a browser never adds it by itself.
    expect((await h.call('PUT', '/api/entries/b1', { body: { labels: ['b1'] }, headers: { authorization: `Bearer ${t.body.accessToken}` } })).status).toBe(201);
    const r = await h.call('POST', '/api/auth/refresh', { body: { refreshToken: t.body.refreshToken } });
    expect(r.status).toBe(200);
    expect(r.body.accessToken).toMatch(/^ey/);
    const forged = t.body.accessToken.slice(0, -6) + 'AAAAAA';
    expect((await h.call('GET', '/api/entries', { headers: { authorization: `Bearer ${forged}` } })).status).toBe(401);
  });
});
