/** The admin server over HTTPS (adminKeyFile/adminCertFile): Secure cookies, HSTS, and the CLI client trusting the certificate. */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient } from '../../src/admin/client.js';
import { validate } from '../../src/config/schema.js';
import { startHarness, type Harness } from './harness.js';

let h: Harness;
let certDir: string;
let keyFile: string;
let certFile: string;

beforeAll(async () => {
  certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'taas-admin-tls-'));
  keyFile = path.join(certDir, 'admin.key.pem');
  certFile = path.join(certDir, 'admin.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=taas admin', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
  h = await startHarness({ adminKeyFile: keyFile, adminCertFile: certFile });
});
afterAll(async () => {
  await h?.close();
  fs.rmSync(certDir, { recursive: true, force: true });
});

function get(p: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const req = https.request(h.url + p, { method: init.method ?? 'GET', headers: init.headers, ca: fs.readFileSync(certFile) }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

describe('admin over TLS', () => {
  it('speaks HTTPS, sends HSTS, and marks the session cookies Secure', async () => {
    expect(h.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const health = await get('/healthz');
    expect(health.status).toBe(200);
    expect(health.headers['strict-transport-security']).toMatch(/max-age=/);
    const r = await get('/api/auth/session', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key: h.managementKey }) });
    expect(r.status).toBe(200);
    const cookies = r.headers['set-cookie'] as string[];
    expect(cookies.filter((c) => /^taas_(at|rt)=/.test(c))).toHaveLength(2);
    for (const c of cookies) expect(c).toMatch(/; Secure/);
  });

  it('the CLI client trusts adminCertFile and works over HTTPS', async () => {
    const c = await adminClient(h.dir, validate({ dataDir: h.dir, adminKeyFile: keyFile, adminCertFile: certFile }));
    expect(c?.url).toBe(h.url);
    expect((await c!.createEntry({ labels: ['secure'] })).entry.labels).toEqual(['secure']);
    // Without the certificate it does not trust the server: no daemon is "found".
    expect(await adminClient(h.dir, validate({ dataDir: h.dir }))).toBeNull();
  });
});
