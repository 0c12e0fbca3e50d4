/**
 * Attacks that spend the relay's time or memory before any credential is checked: slowloris
 * (headers trickled a byte at a time), a silent TCP connection that never starts TLS, an
 * oversized header, a registration with a body, and a TLS 1.1 client. Each is cut off within
 * the configured bound; the limits are set low here so the test is quick.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listen, closeServer } from '../helpers/net.js';
import { TestDaemon } from './daemon.js';

const HEADERS_TIMEOUT_S = 1;
const HANDSHAKE_TIMEOUT_S = 1;

/** Resolves with the ms until the server closed the socket, and what it said. */
function whenClosed(s: net.Socket, t0: number): Promise<{ ms: number; text: string }> {
  return new Promise((resolve) => {
    let text = '';
    s.setEncoding('latin1');
    s.on('data', (c: string) => (text += c));
    s.on('error', () => {});
    s.once('close', () => resolve({ ms: Date.now() - t0, text }));
  });
}

/** A TLS client limited to TLS 1.1, with the ciphers and security level TLS 1.1 needs. */
function tls11(port: number): Promise<{ ok: boolean; error?: string }> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'registrar.localhost', rejectUnauthorized: false, minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
    s.once('secureConnect', () => {
      resolve({ ok: true });
      s.destroy();
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve({ ok: false, error: e.code ?? e.message }));
  });
}

describe('bounds before authentication', () => {
  let d: TestDaemon;
  const sockets: net.Socket[] = [];
  beforeAll(async () => {
    d = TestDaemon.create({ headersTimeout: HEADERS_TIMEOUT_S, tlsHandshakeTimeout: HANDSHAKE_TIMEOUT_S, maxHeaderBytes: 8192 });
    await d.start();
    await d.createEntry(['demo']);
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await d?.dispose();
  });

  it('slowloris: headers trickled a byte every 100 ms are cut off after headersTimeout', async () => {
    // The server's clock starts at the connection (the handshake counts against the bound too).
    const t0 = Date.now();
    const s = tls.connect({ host: '127.0.0.1', port: d.port, servername: 'registrar.localhost', rejectUnauthorized: false });
    sockets.push(s);
    const gone = whenClosed(s, t0);
    await new Promise((r) => s.once('secureConnect', r));
    s.write('PUT /register/demo HTTP/1.1\r\nHost: registrar.localhost\r\n');
    const trickle = setInterval(() => s.writable && s.write('X'), 100);
    const { ms, text } = await gone;
    clearInterval(trickle);
    // headersTimeout, checked every 250 ms by the server; a generous margin for a busy machine.
    expect(ms).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_S * 1000 - 50);
    expect(ms).toBeLessThan(HEADERS_TIMEOUT_S * 1000 + 2500);
    expect(text === '' || text.startsWith('HTTP/1.1 408')).toBe(true);
  });

  it('a TLS connection that never sends a request line is cut off after headersTimeout', async () => {
    const t0 = Date.now();
    const s = tls.connect({ host: '127.0.0.1', port: d.port, servername: 'registrar.localhost', rejectUnauthorized: false });
    sockets.push(s);
    const gone = whenClosed(s, t0);
    await new Promise((r) => s.once('secureConnect', r));
    const { ms } = await gone;
    expect(ms).toBeLessThan(HEADERS_TIMEOUT_S * 1000 + 2500);
  });

  it('a TCP connection that never starts TLS is closed after tlsHandshakeTimeout', async () => {
    const s = net.connect({ host: '127.0.0.1', port: d.port });
    sockets.push(s);
    await new Promise((r) => s.once('connect', r));
    const { ms } = await whenClosed(s, Date.now());
    expect(ms).toBeGreaterThanOrEqual(HANDSHAKE_TIMEOUT_S * 1000 - 50);
    expect(ms).toBeLessThan(HANDSHAKE_TIMEOUT_S * 1000 + 2500);
  });

  it('an oversized header gets 431 and a close, at once', async () => {
    const t0 = Date.now();
    const r = await d.rawRequest(`PUT /register/demo HTTP/1.1\r\nHost: registrar.localhost\r\nX-Pad: ${'a'.repeat(16 * 1024)}\r\n\r\n`);
    expect(r.status).toBe(431);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('more headers than maxHeaders get 431, not a silent cut (which would hide a second Authorization)', async () => {
    const many = Array.from({ length: 50 }, (_, i) => `X-H${i}: v\r\n`).join('');
    const auth = 'Authorization: TOTP username="a", response="123456"\r\n';
    const r = await d.rawRequest(`PUT /register/demo HTTP/1.1\r\nHost: registrar.localhost\r\n${many}${auth}${auth}Connection: close\r\n\r\n`);
    expect(r.status).toBe(431);
    const under = Array.from({ length: 40 }, (_, i) => `X-H${i}: v\r\n`).join('');
    expect((await d.rawRequest(`PUT /register/demo HTTP/1.1\r\nHost: registrar.localhost\r\n${under}Connection: close\r\n\r\n`)).status).toBe(401);
  });

  it('a header block under the limit is served (the 431 is the limit, not any big request)', async () => {
    const r = await d.rawRequest(`PUT /register/demo HTTP/1.1\r\nHost: registrar.localhost\r\nX-Pad: ${'a'.repeat(4 * 1024)}\r\nConnection: close\r\n\r\n`);
    expect(r.status).toBe(401);
  });

  it('a registration with a body is refused (400) without reading it', async () => {
    const r = await d.rawRequest('PUT /register/demo HTTP/1.1\r\nHost: registrar.localhost\r\nAuthorization: TOTP username="a", response="123456"\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello');
    expect(r.status).toBe(400);
  });

  it('refuses a TLS 1.1 client (that same client connects to a server allowing TLS 1.1)', async () => {
    const refused = await tls11(d.port);
    expect(refused.ok).toBe(false);
    // Control: the client really speaks TLS 1.1, so the refusal above is the relay's doing.
    const pem = (f: string) => fs.readFileSync(path.join(d.dataDir, f));
    const lax = tls.createServer({ key: pem('registrar.key'), cert: pem('registrar.crt'), minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' }, (s) => s.end());
    const port = await listen(lax as unknown as net.Server);
    try {
      expect(await tls11(port)).toEqual({ ok: true });
    } finally {
      await closeServer(lax as unknown as net.Server);
    }
  });

  it('TLS 1.2 is accepted', async () => {
    const ok = await new Promise<string | null>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: d.port, servername: 'registrar.localhost', rejectUnauthorized: false, maxVersion: 'TLSv1.2' }, () => {
        resolve(s.getProtocol());
        s.destroy();
      });
      s.once('error', () => resolve(null));
    });
    expect(ok).toBe('TLSv1.2');
  });
});
