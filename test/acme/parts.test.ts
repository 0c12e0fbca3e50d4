/**
 * The ACME parts on their own, on real sockets and a real store: which names the registrar's
 * certificate carries, name coverage, the HTTP-01 listener, a challenge written by one node
 * and answered by another through the store, and the storage files' modes.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { validate } from '../../src/config/schema.js';
import { FileStore } from '../../src/store/file-store.js';
import { SecretBox } from '../../src/store/secret-box.js';
import { ChallengeBook } from '../../src/tls/acme/challenges.js';
import { Http01Server } from '../../src/tls/acme/http01.js';
import { covers } from '../../src/tls/acme/keeper.js';
import { MAX_ACME_NAMES, registrarAcmeNames } from '../../src/tls/acme/names.js';
import { AcmeStorage } from '../../src/tls/acme/storage.js';
import { makeRegistrarCert } from '../../src/tls/certs.js';
import { curl } from '../helpers/curl.js';
import { run } from '../helpers/daemon.js';
import { LOOPBACK } from '../helpers/net.js';

const ACME = { directoryUrl: 'https://acme.example/dir', termsOfServiceAgreed: true };
const dirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'taas-acme-'));
  dirs.push(d);
  return d;
};
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('registrar certificate names', () => {
  const config = validate({ namedRegistrar: 'relay.example.com', namedServers: 'example.com', acme: { ...ACME, names: ['status.example.com'] } });
  it('carries the registrar, the extra names and each redirect-mode label; passthrough labels are left out', () => {
    const entries = [{ labels: ['web', 'Shop'] }, { labels: ['cam', 'door'], clientMode: { cam: 'passthrough' } }, { labels: ['mail'], clientMode: { mail: 'redirect' } }];
    expect(registrarAcmeNames(config, entries)).toEqual({ names: ['relay.example.com', 'status.example.com', 'door.example.com', 'mail.example.com', 'shop.example.com', 'web.example.com'], dropped: 0 });
  });
  it('asks for a wildcard instead of labels when acme.wildcard is set', () => {
    const w = validate({ namedRegistrar: 'relay.example.com', namedServers: 'example.com', acme: { ...ACME, challenge: 'dns-01', dns01Hook: '/h', wildcard: true } });
    expect(registrarAcmeNames(w, [{ labels: ['web'] }]).names).toEqual(['relay.example.com', '*.example.com']);
  });
  it(`keeps at most ${MAX_ACME_NAMES} names, dropping labels, never the registrar`, () => {
    const many = Array.from({ length: 150 }, (_, i) => ({ labels: [`l${String(i).padStart(3, '0')}`] }));
    const r = registrarAcmeNames(config, many);
    expect(r.names).toHaveLength(MAX_ACME_NAMES);
    expect(r.names.slice(0, 2)).toEqual(['relay.example.com', 'status.example.com']);
    expect(r.dropped).toBe(52);
  });
  it('counts a name as covered exactly or by a one-level wildcard', () => {
    expect(covers(['a.example.com'], 'A.example.com')).toBe(true);
    expect(covers(['*.example.com'], 'web.example.com')).toBe(true);
    expect(covers(['*.example.com'], 'a.b.example.com')).toBe(false);
    expect(covers(['*.example.com'], 'example.com')).toBe(false);
    expect(covers(['web.example.com'], '*.example.com')).toBe(false);
  });
});

describe('HTTP-01 listener', () => {
  it('answers a pending token with its key authorization and everything else with 404', async () => {
    const book = new ChallengeBook();
    const srv = new Http01Server(book);
    await srv.listen(0, LOOPBACK);
    closers.push(() => srv.close());
    const token = 'abcdefghijklmnop_-0123456789';
    await book.addHttp(token, `${token}.thumbprint`);
    const get = async (p: string, extra: string[] = []) => {
      const r = await curl(['-o', '-', '-w', '\n%{http_code}', ...extra, `http://${LOOPBACK}:${srv.port}${p}`]);
      return r.stdout.toString();
    };
    expect(await get(`/.well-known/acme-challenge/${token}`)).toBe(`${token}.thumbprint\n200`);
    expect(await get(`/.well-known/acme-challenge/${token}`, ['-X', 'POST'])).toBe('\n404');
    expect(await get('/.well-known/acme-challenge/short')).toBe('\n404');
    expect(await get('/.well-known/acme-challenge/unknown-token-0123456789')).toBe('\n404');
    expect(await get('/')).toBe('\n404');
    await book.removeHttp(token);
    expect(await get(`/.well-known/acme-challenge/${token}`)).toBe('\n404');
  });
});

describe('challenges and certificates through the store', () => {
  const box = new SecretBox([{ id: 'k1', key: crypto.randomBytes(32) }]);

  it('a challenge published by one node is answered by another that shares the store', async () => {
    const store = await FileStore.open(tmp(), box);
    closers.push(() => store.close());
    const orderer = new ChallengeBook(store);
    const other = new ChallengeBook(store);
    const ch = makeRegistrarCert({ dns: ['x.example.com'], ips: [] }, 'challenge', 1);
    await orderer.addTlsAlpn('X.example.com', ch);
    await orderer.addHttp('tok_tok_tok_tok_tok', 'tok.thumb');
    expect(await other.tlsAlpnContext('x.example.com')).not.toBeNull();
    expect(await other.httpAnswer('tok_tok_tok_tok_tok')).toBe('tok.thumb');
    await orderer.removeTlsAlpn('x.example.com');
    await orderer.removeHttp('tok_tok_tok_tok_tok');
    expect(await other.tlsAlpnContext('x.example.com')).toBeNull();
    expect(await other.httpAnswer('tok_tok_tok_tok_tok')).toBeNull();
  });

  it('keeps keys and certificates 0600 in the data dir and sealed in the store; one lock holder at a time', async () => {
    const dataDir = tmp();
    const store = await FileStore.open(dataDir, box);
    closers.push(() => store.close());
    const dir = path.join(dataDir, 'acme');
    const a = new AcmeStorage(dir, 'registrar', store, box);
    const b = new AcmeStorage(path.join(tmp(), 'acme'), 'registrar', store, box);
    const kc = makeRegistrarCert({ dns: ['relay.example.com'], ips: [] }, 'relay', 1);
    const account = await a.accountKey(async () => 'ACCOUNT KEY PEM');
    expect(await b.accountKey(async () => 'another')).toBe(account); // the shared account, not a new one
    const cert = { key: kc.key, cert: kc.cert, names: ['relay.example.com'], notAfter: new Date(Date.now() + 86_400_000).toISOString() };
    await a.saveCert(cert);
    for (const f of ['account.key', 'registrar.key', 'registrar.crt']) expect(fs.statSync(path.join(dir, f)).mode & 0o777, f).toBe(0o600);
    const doc = await store.getDoc<{ key: string; cert: string }>('acme', 'cert:registrar');
    expect(doc!.key).not.toContain('PRIVATE KEY'); // sealed
    expect(doc!.cert).toBe(kc.cert);
    expect((await b.loadCert(() => undefined))?.key).toBe(kc.key);
    expect(await a.lock('node-a')).toBe(true);
    expect(await b.lock('node-b')).toBe(false);
    await b.unlock(); // not its lease: nothing happens
    expect(await b.lock('node-b')).toBe(false);
    await a.unlock();
    expect(await b.lock('node-b')).toBe(true);
  });
});

describe('acme files at start', () => {
  it('config check and start name an unreadable acme.caFile and a hook that cannot run, in one line', async () => {
    const dir = tmp();
    const file = path.join(dir, 'config.json');
    const write = (acme: Record<string, unknown>) => fs.writeFileSync(file, JSON.stringify({ dataDir: path.join(dir, 'data'), namedRegistrar: 'relay.example.com', taasPort: 0, adminPort: 0, acme: { ...ACME, ...acme } }));
    write({ caFile: path.join(dir, 'missing.pem') });
    const check = await run('server', ['config', 'check', '--config', file]);
    expect(check.code).not.toBe(0);
    expect(check.stderr.trim().split('\n')).toEqual([`taas-server: config key acme.caFile: ${path.join(dir, 'missing.pem')} cannot be read (ENOENT)`]);
    const hook = path.join(dir, 'hook.sh');
    fs.writeFileSync(hook, '#!/bin/sh\n', { mode: 0o600 });
    write({ challenge: 'dns-01', dns01Hook: hook });
    const start = await run('server', ['start', '--config', file]);
    expect(start.code).not.toBe(0);
    expect(start.stderr).toContain(`config key acme.dns01Hook: ${hook} cannot be run (EACCES)`);
    expect(start.stderr).not.toMatch(/\n\s+at /); // no stack trace
  }, 30_000);
});
