/**
 * SIGHUP on a real daemon with a config file naming keyFile/certFile: after the files are
 * swapped, new TLS handshakes get the new certificate while an established pairing keeps
 * flowing; new limits apply to new pairings only; a bad config is refused with a log line and
 * the old one stays in force.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { closeServer, closed, connect, listen, readExactly } from '../helpers/net.js';
import { startAgent, startDaemon, stopAll, tempDir } from '../helpers/daemon.js';
import { clientPort } from './util.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await stopAll();
  for (const c of closers.splice(0)) await c();
});

/** A key and self-signed certificate from the real openssl, for the registrar's names. */
function makeCert(dir: string, name: string): { key: string; cert: string; x509: crypto.X509Certificate } {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.crt`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2',
    '-subj', `/CN=registrar.localhost/O=${name}`, '-addext', 'subjectAltName=DNS:registrar.localhost,DNS:*.localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  return { key, cert, x509: new crypto.X509Certificate(fs.readFileSync(cert)) };
}

/**
 * The certificate the registrar presents in a new handshake: without SNI (an IP address) its
 * own certificate; with a label's name, a leaf it mints from its certificate (a CA here).
 */
function presented(port: number, servername?: string): Promise<crypto.X509Certificate> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ...(servername ? { servername } : {}), rejectUnauthorized: false }, () => {
      resolve(s.getPeerX509Certificate()!);
      s.destroy();
    });
    s.once('error', reject);
  });
}

async function echoServer(): Promise<string> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.pipe(s);
  });
  const port = await listen(srv);
  closers.push(async () => {
    for (const s of sockets) s.destroy();
    await closeServer(srv);
  });
  return `127.0.0.1:${port}`;
}

async function echo(s: net.Socket, text: string): Promise<string> {
  s.write(text);
  return (await readExactly(s, Buffer.byteLength(text))).toString();
}

describe('reload on SIGHUP', () => {
  it('a new certificate for new handshakes, established pairings keep flowing, a bad config is refused', async () => {
    const dir = tempDir('taas-reload-');
    const a = makeCert(dir, 'a');
    const b = makeCert(dir, 'b');
    const keyFile = path.join(dir, 'registrar.key');
    const certFile = path.join(dir, 'registrar.crt');
    fs.copyFileSync(a.key, keyFile);
    fs.copyFileSync(a.cert, certFile);
    const d = await startDaemon({ keyFile, certFile, pairingIdleTimeout: 0 });
    expect((await presented(d.registrarPort)).fingerprint256).toBe(a.x509.fingerprint256);
    expect((await presented(d.registrarPort, 'live.localhost')).checkIssued(a.x509)).toBe(true);

    const agent = await startAgent(await d.addEntry(['live']), await echoServer());
    const port = await clientPort(d, 'live', { caFile: a.cert });
    const first = await connect(port);
    expect(await echo(first, 'before reload')).toBe('before reload');
    await agent.until(() => agent.logs('registration established').length >= 2, 'the refill');

    // Swap the files, ask for a pairing idle limit of 1 s, and reload.
    const rewrite = (over: Record<string, unknown>) => {
      const cfg = JSON.parse(fs.readFileSync(d.configFile, 'utf8')) as Record<string, unknown>;
      fs.writeFileSync(d.configFile, JSON.stringify({ ...cfg, ...over }));
    };
    fs.copyFileSync(b.key, keyFile);
    fs.copyFileSync(b.cert, certFile);
    rewrite({ pairingIdleTimeout: 1 });
    d.proc.child.kill('SIGHUP');
    await d.proc.waitLog('configuration reloaded');
    expect((await presented(d.registrarPort)).fingerprint256).toBe(b.x509.fingerprint256);
    const leaf = await presented(d.registrarPort, 'live.localhost');
    expect(leaf.checkIssued(b.x509)).toBe(true);
    expect(leaf.checkIssued(a.x509)).toBe(false);

    // A pairing made now gets the new idle limit and is closed after 1 s of silence...
    const second = await connect(port);
    expect(await echo(second, 'new pairing')).toBe('new pairing');
    await closed(second, 10_000);
    await d.proc.waitLog('pairing ended', 1, 10_000, { reason: 'idle' });
    // ...while the one established before the reload, just as silent, still flows.
    expect(first.destroyed).toBe(false);
    expect(await echo(first, 'after reload')).toBe('after reload');

    // A bad value: refused with a log line, the old config (and certificate) stays.
    rewrite({ maxIdlePerLabel: 0 });
    d.proc.child.kill('SIGHUP');
    const refused = await d.proc.waitLog('reload refused: the new config is invalid; keeping the old one');
    expect(String(refused.err)).toMatch(/maxIdlePerLabel/);
    expect((await presented(d.registrarPort)).fingerprint256).toBe(b.x509.fingerprint256);

    // A certificate file that is not one: refused too.
    rewrite({ maxIdlePerLabel: 64 });
    fs.writeFileSync(certFile, 'not a certificate\n');
    d.proc.child.kill('SIGHUP');
    await d.proc.waitLog('reload refused: the new config is invalid; keeping the old one', 2);
    expect((await presented(d.registrarPort)).fingerprint256).toBe(b.x509.fingerprint256);
    expect(await echo(first, 'still here')).toBe('still here');
    expect(d.proc.running).toBe(true);
    first.end();
  }, 60_000);
});
