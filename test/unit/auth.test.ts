import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { validate } from '../../src/config/schema.js';
import { fixedConfig } from '../../src/config/view.js';
import { Authenticator, AuthFailure } from '../../src/auth/guard.js';
import { totpCode, verifyTotp, newTotpSecret } from '../../src/auth/totp.js';
import { FileStore } from '../../src/store/file-store.js';
import { SecretBox } from '../../src/store/secret-box.js';
import { formatTotpAuthorization, formatSessionAuthorization, issueSessionToken } from '../../src/protocol/index.js';

let dir: string;
let store: FileStore;
const secret = newTotpSecret();
const silent = pino({ level: 'silent' });

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'taas-auth-'));
  store = await FileStore.open(dir, SecretBox.fromFile(path.join(dir, 'secret.key')), silent, { watch: false });
  const now = new Date().toISOString();
  await store.createEntry({ id: 'id1', secret, labels: ['demo'], clientPorts: {}, createdAt: now, updatedAt: now, version: 1 });
});
afterEach(async () => {
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const auth = (over: Record<string, unknown> = {}) => new Authenticator(store, fixedConfig(validate({ lockoutThreshold: 3, lockoutBase: 1, lockoutMax: 8, failuresPerAddress: 1000, ...over })), silent);
const hdr = (token: string, id = 'id1') => formatTotpAuthorization({ id, token });
const failure = async (p: Promise<unknown>) => {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return e instanceof AuthFailure ? `${e.code}/${e.result}` : (e as { code: string }).code;
  }
};

describe('TOTP', () => {
  it('accepts the current step and one step either side, nothing further', () => {
    const now = Date.now();
    expect(verifyTotp(secret, totpCode(secret, {}, now))).not.toBeNull();
    expect(verifyTotp(secret, totpCode(secret, {}, now - 30_000))).not.toBeNull();
    expect(verifyTotp(secret, totpCode(secret, {}, now + 30_000))).not.toBeNull();
    expect(verifyTotp(secret, totpCode(secret, {}, now - 95_000))).toBeNull();
    expect(verifyTotp(secret, 'abcdef')).toBeNull();
    expect(verifyTotp('AB', '123456')).toBeNull();
  });
});

describe('Authenticator', () => {
  it('accepts a good code once and refuses its replay', async () => {
    const a = auth();
    const code = totpCode(secret);
    expect((await a.authenticate(hdr(code), '127.0.0.1')).entry.id).toBe('id1');
    expect(await failure(a.authenticate(hdr(code), '127.0.0.1'))).toBe('TAAS_AUTH_FAILED/replay');
  });
  it('answers unknown IDs and wrong codes alike', async () => {
    const a = auth();
    expect(await failure(a.authenticate(hdr('000000', 'nobody'), '127.0.0.1'))).toBe('TAAS_AUTH_FAILED/bad-code');
    const wrong = totpCode(secret) === '000000' ? '111111' : '000000';
    expect(await failure(a.authenticate(hdr(wrong), '127.0.0.1'))).toBe('TAAS_AUTH_FAILED/bad-code');
  });
  it('locks an ID out after the threshold with a growing delay, visible in its state', async () => {
    const a = auth();
    for (let i = 0; i < 3; i++) expect(await failure(a.authenticate(hdr('000001'), '127.0.0.1'))).toBe('TAAS_AUTH_FAILED/bad-code');
    const st = await store.getAuthState('id1');
    expect(st.failures).toBe(3);
    expect(st.lockedUntil).toBeGreaterThan(Date.now());
    // Even the right code is refused while locked.
    expect(await failure(a.authenticate(hdr(totpCode(secret)), '127.0.0.1'))).toBe('TAAS_LOCKED_OUT/locked');
  });
  it('limits failures per source address across IDs', async () => {
    const a = auth({ failuresPerAddress: 3, lockoutThreshold: 100 });
    for (let i = 0; i < 3; i++) await failure(a.authenticate(hdr('000001', `spray${i}`), '127.0.0.9'));
    expect(await failure(a.authenticate(hdr('000001', 'spray9'), '127.0.0.9'))).toBe('TAAS_RATE_LIMITED/rate-limited');
    expect(await failure(a.authenticate(hdr(totpCode(secret)), '127.0.0.1'))).toBe('ok');
  });
  it('accepts a session token from the bound address and refuses a forged one', async () => {
    const a = auth();
    const token = issueSessionToken(secret, 'id1', 60, '127.0.0.1');
    expect((await a.authenticate(formatSessionAuthorization({ id: 'id1', token }), '127.0.0.1')).via).toBe('session');
    expect(await failure(a.authenticate(formatSessionAuthorization({ id: 'id1', token }), '127.0.0.2'))).toBe('TAAS_AUTH_FAILED/bad-session');
  });
  it('distinguishes missing and malformed headers', async () => {
    const a = auth();
    expect(await failure(a.authenticate(undefined, '127.0.0.1'))).toBe('TAAS_AUTH_MISSING');
    expect(await failure(a.authenticate('Basic x', '127.0.0.1'))).toBe('TAAS_AUTH_MALFORMED');
  });
});

describe('secrets at rest', () => {
  it('entries.json holds no plaintext secret', () => {
    const text = fs.readFileSync(path.join(dir, 'entries.json'), 'utf8');
    expect(text).not.toContain(secret);
    expect(text).toContain('secretSealed');
  });
  it('the key file is mode 0600', () => {
    expect(fs.statSync(path.join(dir, 'secret.key')).mode & 0o777).toBe(0o600);
  });
});
