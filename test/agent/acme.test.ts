/**
 * The agent's TLS-ALPN-01 responder on its own: a responder-style TLSSocket (what each paired
 * registration runs with --acme) answering a real TLS client. acme-tls/1 for a pending name
 * gets the challenge certificate, even from a client preferring RSA-PSS; everyone else gets
 * the agent's certificate and their protocol passed on.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import acmeClient from 'acme-client';
import { AgentAcme } from '../../src/agent/acme.js';
import { silentLogger } from '../../src/agent/log.js';
import { makeRegistrarCert } from '../../src/tls/certs.js';
import { closeServer, listen, LOOPBACK } from '../helpers/net.js';

function handshake(port: number, opts: tls.ConnectionOptions): Promise<{ subject: string; alpn: string | false; keyType?: string } | Error> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: LOOPBACK, port, rejectUnauthorized: false, servername: 'app.acme.test', ...opts }, () => {
      const x = s.getPeerX509Certificate()!;
      resolve({ subject: x.subject, alpn: s.alpnProtocol ?? false, ...(opts.sigalgs ? { keyType: x.publicKey.asymmetricKeyType } : {}) });
      s.destroy();
    });
    s.on('error', (e) => resolve(e));
  });
}

describe('taas-agent --acme responder TLS', () => {
  let acme: AgentAcme;
  let srv: net.Server;
  let port: number;
  let dir: string;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'taas-agent-acme-'));
    acme = new AgentAcme({ directoryUrl: 'https://127.0.0.1:9/dir', names: ['app.acme.test'], dir, renewBeforeDays: 30, checkInterval: 3600, log: silentLogger() });
    // As Responder.waitTls does: one TLSSocket per paired connection, with the settings of the moment.
    srv = net.createServer((raw) => {
      const { secureContext, ...rest } = acme.responderTls();
      const s = new tls.TLSSocket(raw, { isServer: true, secureContext, ...rest } as tls.TLSSocketOptions);
      s.on('secure', () => s.end());
      s.on('error', () => raw.destroy());
    });
    port = await listen(srv);
  });
  afterAll(async () => {
    acme.stop();
    await closeServer(srv);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('answers acme-tls/1 with the pending challenge certificate only', async () => {
    await acme.book.addTlsAlpn('app.acme.test', makeRegistrarCert({ dns: ['app.acme.test'], ips: [] }, 'acme challenge', 1));
    for (const sigalgs of [undefined, 'rsa_pss_rsae_sha256:ecdsa_secp256r1_sha256', 'ecdsa_secp256r1_sha256:rsa_pss_rsae_sha256']) {
      const v = await handshake(port, { ALPNProtocols: ['acme-tls/1'], ...(sigalgs ? { sigalgs } : {}) });
      expect(v instanceof Error ? v.message : v.subject, String(sigalgs)).toContain('CN=acme challenge');
      if (!(v instanceof Error)) expect(v.alpn).toBe('acme-tls/1');
    }
    const browser = await handshake(port, { ALPNProtocols: ['h2', 'http/1.1'] });
    expect(browser instanceof Error ? browser.message : browser).toEqual({ subject: expect.stringContaining('CN=app.acme.test'), alpn: 'http/1.1' });
    await acme.book.removeTlsAlpn('app.acme.test');
    expect(await handshake(port, { ALPNProtocols: ['acme-tls/1'] })).toBeInstanceOf(Error);
  });

  it('why the challenge key type follows the served one: an ECDSA challenge beside an RSA certificate loses to a client preferring RSA-PSS', async () => {
    const key = await acmeClient.crypto.createPrivateEcdsaKey('P-256');
    const [, cert] = await acmeClient.crypto.createAlpnCertificate({ identifier: { type: 'dns', value: 'app.acme.test' } } as never, 'token.thumb', key);
    await acme.book.addTlsAlpn('app.acme.test', { key: key.toString(), cert: cert.toString() });
    const pss = await handshake(port, { ALPNProtocols: ['acme-tls/1'], sigalgs: 'rsa_pss_rsae_sha256:ecdsa_secp256r1_sha256' });
    expect(pss instanceof Error ? pss.message : pss.keyType).toBe('rsa'); // the RSA stand-in, not the ECDSA challenge
    const ecFirst = await handshake(port, { ALPNProtocols: ['acme-tls/1'], sigalgs: 'ecdsa_secp256r1_sha256:rsa_pss_rsae_sha256' });
    expect(ecFirst instanceof Error ? ecFirst.message : ecFirst.keyType).toBe('ec'); // the challenge, only by the client's choice
    await acme.book.removeTlsAlpn('app.acme.test');
  });

  it('passes another protocol on, and a client without ALPN gets the certificate', async () => {
    expect(await handshake(port, { ALPNProtocols: ['mqtt'] })).toEqual({ subject: expect.stringContaining('CN=app.acme.test'), alpn: 'mqtt' });
    expect(await handshake(port, {})).toEqual({ subject: expect.stringContaining('CN=app.acme.test'), alpn: false });
  });
});
