/**
 * Attack: walk off with the store. A copy of the data dir without the key file (entries.json,
 * state.json) or a dump of every Redis key reveals no TOTP secret, no API key, no cookie. And
 * `store rotate-key` re-seals every secret with a new key while the daemon runs, so that after
 * `--drop-old` an old copy of the store no longer opens with the key file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base32Decode } from './base32.js';
import type { AgentFile } from '../../src/protocol/agent-file.js';
import { startRedis, type RedisProcess } from '../helpers/redis.js';
import { SecretBox } from '../../src/store/secret-box.js';
import { TestDaemon } from './daemon.js';

/** Every spelling of a secret that a careless store might hold. */
function spellings(secret: string): string[] {
  const raw = base32Decode(secret);
  return [secret, secret.toLowerCase(), raw.toString('hex'), raw.toString('base64'), raw.toString('base64url')];
}

function expectNoneIn(dump: string, needles: string[], what: string): void {
  for (const n of needles) expect(dump.includes(n), `${what} holds ${n.slice(0, 4)}…`).toBe(false);
}

/** Sealed secret of every entry in entries.json: `v1.<keyId>.<iv>.<tag>.<ct>`. */
function sealedIds(dataDir: string): string[] {
  const f = JSON.parse(fs.readFileSync(path.join(dataDir, 'entries.json'), 'utf8')) as { entries: { secretSealed: string }[] };
  return f.entries.map((e) => e.secretSealed.split('.')[1]!);
}

function keyIds(dataDir: string): string[] {
  return (JSON.parse(fs.readFileSync(path.join(dataDir, 'secret.key'), 'utf8')) as { keys: { id: string }[] }).keys.map((k) => k.id);
}

describe('secrets at rest: embedded store', () => {
  let d: TestDaemon;
  let a: AgentFile;
  let b: AgentFile;
  let cookie = '';
  let session = '';

  beforeAll(async () => {
    d = TestDaemon.create();
    await d.start();
    [a, b] = await Promise.all([d.createEntry(['alpha']), d.createEntry(['beta'])]);
    const reg = await d.register(a, 'alpha');
    expect(reg.status).toBe(200);
    cookie = reg.headers['taas-cookie'] as string;
    session = reg.headers['taas-session'] as string;
    await d.register(b, 'beta', '000000'); // a failure too, so the auth state holds b
    await d.admin('/api/entries'); // and the admin plane has used its key
  });
  afterAll(async () => {
    await d?.dispose();
  });

  it('store rotate-key re-seals every secret with a new key while the daemon runs; --drop-old retires the old one', async () => {
    const before = keyIds(d.dataDir);
    expect(before).toHaveLength(1);
    const oldCopy = fs.readFileSync(path.join(d.dataDir, 'entries.json'), 'utf8');

    const r = await d.cli(['store', 'rotate-key']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/re-sealed: 2 entries/);
    const after = keyIds(d.dataDir);
    expect(after).toHaveLength(2);
    expect(sealedIds(d.dataDir)).toEqual([after[1], after[1]]);

    // The running daemon reads the new seals: an entry another process makes now (sealed with the
    // new key, which the daemon has not loaded yet) registers.
    const c = await d.addEntry(['gamma']);
    await expect.poll(async () => (await d.register(c, 'gamma')).status, { timeout: 10_000, interval: 100 }).toBe(200);
    // And the secrets survived the re-seal: a session token minted from alpha's secret still verifies.
    expect((await d.registerWithSession(a, 'alpha', session)).status).toBe(200);

    const drop = await d.cli(['store', 'rotate-key', '--drop-old']);
    expect(drop.code, drop.stderr).toBe(0);
    const final = keyIds(d.dataDir);
    expect(final).toHaveLength(1);
    expect(final).not.toContain(before[0]);
    expect(new Set(sealedIds(d.dataDir))).toEqual(new Set(final));

    // With the one key left, the store opens (secrets intact) and the old copy does not.
    const box = SecretBox.fromFile(path.join(d.dataDir, 'secret.key'));
    const now = JSON.parse(fs.readFileSync(path.join(d.dataDir, 'entries.json'), 'utf8')) as { entries: { id: string; secretSealed: string }[] };
    expect(now.entries.map((e) => box.open(e.secretSealed)).sort()).toEqual([a.secret, b.secret, c.secret].sort());
    const old = JSON.parse(oldCopy) as { entries: { secretSealed: string }[] };
    for (const e of old.entries) expect(() => box.open(e.secretSealed)).toThrow(/cannot be opened/);
    expect((await d.registerWithSession(a, 'alpha', session)).status).toBe(200);
  });

  it('rotate-key refuses --drop-old without the re-seal, changing nothing', async () => {
    const keys = keyIds(d.dataDir);
    const r = await d.cli(['store', 'rotate-key', '--no-reseal', '--drop-old']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--drop-old needs the re-seal/);
    expect(keyIds(d.dataDir)).toEqual(keys);
  });

  it('entries.json and state.json hold no TOTP secret, API key, cookie or session token', async () => {
    await d.stop(); // everything flushed
    const adminKey = fs.readFileSync(path.join(d.dataDir, 'admin.key'), 'utf8').trim();
    for (const f of ['entries.json', 'state.json']) {
      const dump = fs.readFileSync(path.join(d.dataDir, f), 'utf8');
      expectNoneIn(dump, [...spellings(a.secret), ...spellings(b.secret), adminKey, cookie, session], f);
    }
    // The stores do hold the entries: the secret is there, sealed.
    expect(fs.readFileSync(path.join(d.dataDir, 'entries.json'), 'utf8')).toMatch(/"secretSealed": "v1\./);
    // The key files are the operator's to protect: mode 0600.
    for (const f of ['secret.key', 'admin.key', 'registrar.key']) expect(fs.statSync(path.join(d.dataDir, f)).mode & 0o777).toBe(0o600);
  });
});

describe('secrets at rest: Redis', () => {
  let redis: RedisProcess;
  let d: TestDaemon;
  beforeAll(async () => {
    redis = await startRedis();
    d = TestDaemon.create({ redis: redis.url });
  });
  afterAll(async () => {
    await d?.dispose();
    await redis?.stop();
  });

  it('a dump of every key holds no TOTP secret, API key or cookie', async () => {
    await d.start();
    const a = await d.createEntry(['rho']);
    const reg = await d.register(a, 'rho');
    expect(reg.status).toBe(200);
    await d.admin('/api/entries');
    const adminKey = fs.readFileSync(path.join(d.dataDir, 'admin.key'), 'utf8').trim();
    const keys = redis.cli('--scan').split('\n').filter(Boolean);
    expect(keys.length).toBeGreaterThan(3);
    let dump = '';
    for (const k of keys) {
      const type = redis.cli('TYPE', k);
      const read: Record<string, string[]> = { string: ['GET', k], hash: ['HGETALL', k], list: ['LRANGE', k, '0', '-1'], set: ['SMEMBERS', k], zset: ['ZRANGE', k, '0', '-1', 'WITHSCORES'], stream: ['XRANGE', k, '-', '+'] };
      dump += `${k}\n${read[type] ? redis.cli(...read[type]!) : ''}\n`;
    }
    expect(dump).toMatch(/v1\./); // the sealed secret is in there
    expectNoneIn(dump, [...spellings(a.secret), adminKey, reg.headers['taas-cookie'] as string, reg.headers['taas-session'] as string], 'the Redis dump');
  });
});

describe('store export and import (moving between stores)', () => {
  const daemons: TestDaemon[] = [];
  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.dispose()));
  });

  it('export writes mode 0600 JSON lines (also over an existing file); import seals them with the other store\'s key', async () => {
    const from = TestDaemon.create();
    const to = TestDaemon.create();
    daemons.push(from, to);
    const a = await from.addEntry(['exported']);
    const file = path.join(from.dir, 'entries.jsonl');
    fs.writeFileSync(file, 'an older, world-readable file\n', { mode: 0o644 });
    const ex = await from.cli(['store', 'export', '--out', file]);
    expect(ex.code, ex.stderr).toBe(0);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const lines = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string; secret: string });
    expect(lines).toEqual([expect.objectContaining({ id: a.id, secret: a.secret })]);
    const im = await to.cli(['store', 'import', file]);
    expect(im.code, im.stderr).toBe(0);
    expect(im.stdout).toMatch(/created 1, updated 0, unchanged 0/);
    // Sealed with the other store's own key: its entries.json holds no plaintext secret.
    expect(fs.readFileSync(path.join(to.dataDir, 'entries.json'), 'utf8')).not.toContain(a.secret);
    // The agent file holds a secret too: written over an existing world-readable file, it is 0600.
    const agentOut = path.join(to.dir, 'agent.json');
    fs.writeFileSync(agentOut, '{}\n', { mode: 0o644 });
    expect((await to.cli(['entries', 'add', '--label', 'reissued', '--out', agentOut])).code).toBe(0);
    expect(fs.statSync(agentOut).mode & 0o777).toBe(0o600);
  });
});
