/**
 * One ACME order against the real pebble, answered by the TLS-ALPN-01 handlers inside a plain
 * Node TLS server (what the registrar and the agent use), and the handlers' own rules with a
 * real TLS client: the challenge certificate only to a handshake offering acme-tls/1 for a
 * pending name, the usual certificate and http/1.1 to everyone else.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acmeTlsHandlers, selectHttp11 } from '../../src/tls/acme/alpn.js';
import { ChallengeBook } from '../../src/tls/acme/challenges.js';
import { issuingRoot } from '../../src/tls/acme/issuer-root.js';
import { newAccountKey, orderCertificate } from '../../src/tls/acme/order.js';
import { makeRegistrarCert } from '../../src/tls/certs.js';
import { closeServer, freePort, listen, LOOPBACK } from '../helpers/net.js';
import { startPebble, type Pebble } from '../helpers/pebble.js';

const usual = makeRegistrarCert({ dns: ['usual.acme.test'], ips: [] }, 'usual', 1);
const usualCtx = tls.createSecureContext({ key: usual.key, cert: usual.cert });

function server(book: ChallengeBook): tls.Server {
  return tls.createServer({
    key: usual.key,
    cert: usual.cert,
    ...acmeTlsHandlers(book, { select: selectHttp11, sni: (_n, cb) => cb(null, usualCtx) }),
  }, (s) => s.end());
}

function handshake(port: number, opts: tls.ConnectionOptions): Promise<{ cert: crypto.X509Certificate; alpn: string | false } | Error> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: LOOPBACK, port, rejectUnauthorized: false, ...opts }, () => {
      const raw = s.getPeerX509Certificate();
      resolve({ cert: raw!, alpn: s.alpnProtocol ?? false });
      s.destroy();
    });
    s.on('error', (e) => resolve(e));
  });
}

describe('TLS-ALPN-01 handlers', () => {
  let book: ChallengeBook;
  let srv: tls.Server;
  let port: number;
  beforeAll(async () => {
    book = new ChallengeBook();
    srv = server(book);
    port = await listen(srv);
  });
  afterAll(() => closeServer(srv));

  it('gives the challenge certificate only to acme-tls/1 for a pending name (TLS 1.3)', async () => {
    const ch = makeRegistrarCert({ dns: ['pending.acme.test'], ips: [] }, 'challenge', 1);
    await book.addTlsAlpn('pending.acme.test', ch);
    const v = await handshake(port, { servername: 'pending.acme.test', ALPNProtocols: ['acme-tls/1'] });
    expect(v).not.toBeInstanceOf(Error);
    if (v instanceof Error) return;
    expect(v.alpn).toBe('acme-tls/1');
    expect(v.cert.subject).toContain('CN=challenge');
    // The same name without acme-tls/1: the usual certificate, http/1.1.
    const b = await handshake(port, { servername: 'pending.acme.test', ALPNProtocols: ['h2', 'http/1.1'] });
    expect(b instanceof Error ? b.message : b.cert.subject).toContain('CN=usual');
    if (!(b instanceof Error)) expect(b.alpn).toBe('http/1.1');
    // No ALPN at all: the usual certificate.
    const c = await handshake(port, { servername: 'pending.acme.test' });
    expect(c instanceof Error ? c.message : c.cert.subject).toContain('CN=usual');
    await book.removeTlsAlpn('pending.acme.test');
  });

  it('refuses acme-tls/1 for a name with no pending challenge, and under TLS 1.2', async () => {
    const none = await handshake(port, { servername: 'other.acme.test', ALPNProtocols: ['acme-tls/1'] });
    expect(none).toBeInstanceOf(Error);
    const ch = makeRegistrarCert({ dns: ['old.acme.test'], ips: [] }, 'challenge', 1);
    await book.addTlsAlpn('old.acme.test', ch);
    const old = await handshake(port, { servername: 'old.acme.test', ALPNProtocols: ['acme-tls/1'], maxVersion: 'TLSv1.2' });
    expect(old).toBeInstanceOf(Error);
    await book.removeTlsAlpn('old.acme.test');
  });

  it('refuses a client offering only protocols the registrar does not speak', async () => {
    expect(await handshake(port, { servername: 'x.acme.test', ALPNProtocols: ['h2'] })).toBeInstanceOf(Error);
  });
});

describe('an ACME order against pebble, answered by TLS-ALPN-01', () => {
  let pebble: Pebble;
  let srv: tls.Server;
  let book: ChallengeBook;
  beforeAll(async () => {
    const tlsPort = await freePort();
    book = new ChallengeBook();
    srv = server(book);
    await listen(srv, tlsPort);
    pebble = await startPebble({ tlsPort });
  }, 30_000);
  afterAll(async () => {
    await pebble?.stop();
    await closeServer(srv);
  });

  it('obtains a certificate for the names that verifies against pebble\'s issuing root', async () => {
    const issued = await orderCertificate({
      directoryUrl: pebble.directoryUrl,
      directoryCa: fs.readFileSync(pebble.directoryCaFile, 'utf8'),
      accountKey: await newAccountKey(),
      names: ['one.acme.test', 'two.acme.test'],
      challenge: 'tls-alpn-01',
      book,
    }).catch((e: Error) => {
      throw new Error(`${e.message}\n${pebble.logs()}`);
    });
    const leaf = new crypto.X509Certificate(issued.cert);
    expect(leaf.subjectAltName).toContain('DNS:one.acme.test');
    expect(leaf.subjectAltName).toContain('DNS:two.acme.test');
    expect(new Date(issued.notAfter).getTime()).toBeGreaterThan(Date.now());
    expect(book.pendingNames).toEqual([]); // challenges removed once valid
    // The chain verifies up to the root pebble's management endpoint names.
    const root = new crypto.X509Certificate(await pebble.issuingRoot());
    const chain = issued.cert.split(/(?<=-----END CERTIFICATE-----)\s*/).filter((p) => p.includes('BEGIN'));
    const inter = new crypto.X509Certificate(chain[1]!);
    expect(leaf.verify(inter.publicKey)).toBe(true);
    expect(inter.verify(root.publicKey)).toBe(true);
    expect(crypto.createPrivateKey(issued.key).asymmetricKeyType).toBe('ec');
    // Agent files need that root: found among the given roots, not among Node's public ones.
    expect(issuingRoot(issued.cert, `${usual.cert}\n${await pebble.issuingRoot()}`)).toBe(root.toString());
    expect(issuingRoot(issued.cert)).toBeNull();
  }, 60_000);
});
