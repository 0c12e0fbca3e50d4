/**
 * Code reuse within its step (issue 11): an original-protocol hidden server builds its pool by
 * sending the same TOTP code again after each 200. Accepted only with allowCookieless, only the
 * current step's code, only from the bucket that first used it, at most codeReusePerStep times;
 * never a failure, never a reset of the failure count. Every other replay is refused and
 * counted as before. The clock is pinned (Date only) so a step boundary cannot fall mid-test.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { validate } from '../../src/config/schema.js';
import { fixedConfig } from '../../src/config/view.js';
import { Authenticator, AuthFailure } from '../../src/auth/guard.js';
import { totpCode, newTotpSecret } from '../../src/auth/totp.js';
import { FileStore } from '../../src/store/file-store.js';
import { SecretBox } from '../../src/store/secret-box.js';
import { formatTotpAuthorization } from '../../src/protocol/index.js';

let dir: string;
let store: FileStore;
const secret = newTotpSecret();
const silent = pino({ level: 'silent' });
const HOME = '192.0.2.10';

beforeEach(async () => {
  vi.useFakeTimers({ toFake: ['Date'] });
  // One second into a step: the whole test runs inside it.
  vi.setSystemTime((Math.floor(Date.now() / 30_000) + 1) * 30_000 + 1000);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'taas-reuse-'));
  store = await FileStore.open(dir, SecretBox.fromFile(path.join(dir, 'secret.key')), silent, { watch: false });
  const now = new Date().toISOString();
  await store.createEntry({ id: 'id1', secret, labels: ['demo'], clientPorts: {}, createdAt: now, updatedAt: now, version: 1 });
});
afterEach(async () => {
  vi.useRealTimers();
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const auth = (over: Record<string, unknown> = {}) =>
  new Authenticator(store, fixedConfig(validate({ allowCookieless: true, lockoutThreshold: 3, lockoutBase: 1, lockoutMax: 8, failuresPerAddress: 1000, ...over })), silent);
const code = (offsetSteps = 0) => formatTotpAuthorization({ id: 'id1', token: totpCode(secret, {}, Date.now() + offsetSteps * 30_000) });
const outcome = async (p: Promise<{ via: string }>) => {
  try {
    return (await p).via;
  } catch (e) {
    return e instanceof AuthFailure ? `${e.code}/${e.result}` : (e as { code: string }).code;
  }
};
const register = { reuse: true };

describe('TOTP code reuse within its step', () => {
  it('builds a pool of 17 from one code at one address, then refuses and counts the next', async () => {
    const a = auth();
    expect(await outcome(a.authenticate(code(), HOME, register))).toBe('totp');
    for (let i = 0; i < 16; i++) expect(await outcome(a.authenticate(code(), HOME, register))).toBe('reuse');
    expect((await store.getAuthState('id1')).failures).toBe(0);
    expect(await outcome(a.authenticate(code(), HOME, register))).toBe('TAAS_AUTH_FAILED/replay');
    expect((await store.getAuthState('id1')).failures).toBe(1);
  });

  it('takes the bound from codeReusePerStep; 0 turns reuse off', async () => {
    const a = auth({ codeReusePerStep: 2 });
    expect(await outcome(a.authenticate(code(), HOME, register))).toBe('totp');
    expect(await outcome(a.authenticate(code(), HOME, register))).toBe('reuse');
    expect(await outcome(a.authenticate(code(), HOME, register))).toBe('reuse');
    expect(await outcome(a.authenticate(code(), HOME, register))).toBe('TAAS_AUTH_FAILED/replay');
    const off = auth({ codeReusePerStep: 0 });
    expect(await outcome(off.authenticate(code(1), HOME, register))).toBe('totp');
    expect(await outcome(off.authenticate(code(1), HOME, register))).toBe('TAAS_AUTH_FAILED/replay');
  });

  it('refuses and counts a replay from another address bucket; the same IPv6 /64 is one bucket', async () => {
    const a = auth();
    expect(await outcome(a.authenticate(code(), HOME, register))).toBe('totp');
    expect(await outcome(a.authenticate(code(), '198.51.100.7', register))).toBe('TAAS_AUTH_FAILED/replay');
    expect((await store.getAuthState('id1')).failures).toBe(1);
    vi.setSystemTime(Date.now() + 30_000);
    expect(await outcome(a.authenticate(code(), '2001:db8:1:2::10', register))).toBe('totp');
    expect(await outcome(a.authenticate(code(), '2001:db8:1:2:ffff::9', register))).toBe('reuse');
    expect(await outcome(a.authenticate(code(), '2001:db8:1:3::10', register))).toBe('TAAS_AUTH_FAILED/replay');
  });

  it('is refused without allowCookieless (cookie-speaking relay) and on other paths than registration', async () => {
    const strict = auth({ allowCookieless: false });
    expect(await outcome(strict.authenticate(code(), HOME, register))).toBe('totp');
    expect(await outcome(strict.authenticate(code(), HOME, register))).toBe('TAAS_AUTH_FAILED/replay');
    const a = auth();
    expect(await outcome(a.authenticate(code(1), HOME, register))).toBe('totp');
    expect(await outcome(a.authenticate(code(1), HOME))).toBe('TAAS_AUTH_FAILED/replay'); // GET /pairings
  });

  it('only within the code’s own step: a neighbour step the window accepted is not reusable', async () => {
    const a = auth();
    expect(await outcome(a.authenticate(code(-1), HOME, register))).toBe('totp');
    expect(await outcome(a.authenticate(code(-1), HOME, register))).toBe('TAAS_AUTH_FAILED/replay');
    expect(await outcome(a.authenticate(code(1), HOME, register))).toBe('totp');
    expect(await outcome(a.authenticate(code(1), HOME, register))).toBe('TAAS_AUTH_FAILED/replay');
    // Once the clock reaches that step, it is the code's own step.
    vi.setSystemTime(Date.now() + 30_000);
    expect(await outcome(a.authenticate(code(), HOME, register))).toBe('reuse');
  });

  it('neither resets a stranger’s failure count nor passes while the ID is locked', async () => {
    const a = auth();
    expect(await outcome(a.authenticate(code(), HOME, register))).toBe('totp');
    const wrong = formatTotpAuthorization({ id: 'id1', token: totpCode(secret, {}, Date.now()) === '000000' ? '111111' : '000000' });
    expect(await outcome(a.authenticate(wrong, '198.51.100.7', register))).toBe('TAAS_AUTH_FAILED/bad-code');
    expect(await outcome(a.authenticate(wrong, '198.51.100.7', register))).toBe('TAAS_AUTH_FAILED/bad-code');
    expect(await outcome(a.authenticate(code(), HOME, register))).toBe('reuse');
    expect((await store.getAuthState('id1')).failures).toBe(2);
    expect(await outcome(a.authenticate(wrong, '198.51.100.7', register))).toBe('TAAS_AUTH_FAILED/bad-code');
    expect(await outcome(a.authenticate(code(), HOME, register))).toBe('TAAS_LOCKED_OUT/locked');
  });

  it('a wrong code from the first bucket is counted like any wrong code', async () => {
    const a = auth();
    expect(await outcome(a.authenticate(code(), HOME, register))).toBe('totp');
    const wrong = formatTotpAuthorization({ id: 'id1', token: totpCode(secret, {}, Date.now()) === '000000' ? '111111' : '000000' });
    expect(await outcome(a.authenticate(wrong, HOME, register))).toBe('TAAS_AUTH_FAILED/bad-code');
    expect((await store.getAuthState('id1')).failures).toBe(1);
  });
});
