/**
 * The classifier on the other side's own bytes: ClientHellos captured from real clients (Node's
 * OpenSSL, curl) on a loopback socket, and the other first octets the shared port meets.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { classifyFirstOctets, formatCookieLine, newCookie, scanClientHello } from '../../src/protocol/index.js';
import { closeServer, listen } from '../helpers/net.js';

let server: net.Server | null = null;
afterEach(async () => {
  if (server) await closeServer(server);
  server = null;
});

/** Starts a raw listener; resolves with the first octets of the first connection once `enough` says so. */
async function capture(connect: (port: number) => void, enough = (b: Buffer) => scanClientHello(b).kind !== 'need-more'): Promise<Buffer> {
  let got!: (b: Buffer) => void;
  const p = new Promise<Buffer>((r) => (got = r));
  server = net.createServer((s) => {
    let buf = Buffer.alloc(0);
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (enough(buf)) {
        got(buf);
        s.destroy();
      }
    });
    s.on('error', () => undefined);
  });
  connect(await listen(server));
  return p;
}

describe('ClientHello of real clients', () => {
  it('OpenSSL (Node tls.connect): SNI and ALPN', async () => {
    const hello = await capture((port) => {
      const c = tls.connect({ port, host: '127.0.0.1', servername: 'Demo.Localhost', ALPNProtocols: ['acme-tls/1'] });
      c.on('error', () => undefined);
    });
    expect(scanClientHello(hello)).toMatchObject({ kind: 'hello', sni: 'demo.localhost', alpn: ['acme-tls/1'] });
    expect(classifyFirstOctets(hello)).toMatchObject({ kind: 'hello', sni: 'demo.localhost' });
  });

  it('curl: SNI of the URL, ALPN h2 and http/1.1; no SNI for an address', async () => {
    const run = (url: string) =>
      capture((port) => {
        const c = spawn('curl', ['-sk', '--max-time', '5', '--resolve', `demo.localhost:${port}:127.0.0.1`, url.replace('PORT', String(port))], { stdio: 'ignore' });
        c.on('error', () => undefined);
      });
    expect(scanClientHello(await run('https://demo.localhost:PORT/'))).toMatchObject({ kind: 'hello', sni: 'demo.localhost', alpn: expect.arrayContaining(['http/1.1']) });
    await closeServer(server!);
    expect(scanClientHello(await run('https://127.0.0.1:PORT/'))).toMatchObject({ kind: 'hello', sni: null });
  });
});

describe('first octets', () => {
  it('a cookie line, its following octets kept', () => {
    const token = newCookie();
    const r = classifyFirstOctets(Buffer.from(formatCookieLine(token) + 'early'));
    expect(r).toMatchObject({ kind: 'cookie', token });
    expect(r.kind === 'cookie' && r.rest.toString()).toBe('early');
    expect(classifyFirstOctets(Buffer.from('TAAS-Coo')).kind).toBe('need-more');
    expect(classifyFirstOctets(Buffer.from('TAAS-Cookie !!\r\n')).kind).toBe('other');
  });

  it('plain HTTP, SSH banners and garbage', () => {
    expect(classifyFirstOctets(Buffer.from('PUT /register/x HTTP/1.1\r\n')).kind).toBe('http');
    expect(classifyFirstOctets(Buffer.from('GE')).kind).toBe('need-more');
    expect(classifyFirstOctets(Buffer.from('SSH-2.0-OpenSSH_9.2\r\n')).kind).toBe('other');
    expect(classifyFirstOctets(Buffer.from([0x16, 3, 1, 0, 0])).kind).toBe('other');
    expect(classifyFirstOctets(Buffer.from([0x80, 0x2e, 1, 3, 1])).kind).toBe('other');
  });
});
