import { describe, expect, it } from 'vitest';
import { totpCode } from '../../src/auth/totp.js';
import { Credentials, SESSION_RENEW_MARGIN_MS } from '../../src/agent/credentials.js';
import { parseSessionAuthorization, parseTotpAuthorization } from '../../src/protocol/index.js';
import { TEST_SECRET } from './fixtures.js';

const file = { id: 'agent-1', secret: TEST_SECRET, algorithm: 'SHA1' as const, digits: 6, period: 30 };

describe('Credentials', () => {
  it('starts with a TOTP code for the current step, then uses the newest session token', async () => {
    let now = 1_700_000_000_000;
    const c = new Credentials(file, () => now);
    const first = await c.next();
    expect(first.kind).toBe('totp');
    expect(parseTotpAuthorization(first.header)).toEqual({ id: 'agent-1', token: totpCode(TEST_SECRET, {}, now) });

    const exp = Math.floor(now / 1000) + 600;
    c.acceptSession(`v1.${exp}.aaaa.mac1`);
    c.acceptSession(`v1.${exp}.bbbb.mac2`);
    const second = await c.next();
    expect(second.kind).toBe('session');
    expect(parseSessionAuthorization(second.header)).toEqual({ id: 'agent-1', token: `v1.${exp}.bbbb.mac2` });

    // Near expiry the token is no longer offered: a fresh code from a new step is used.
    now = exp * 1000 - SESSION_RENEW_MARGIN_MS + 1;
    expect(c.hasUsableSession()).toBe(false);
    expect(c.msUntilFreshCode()).toBe(0);
    expect((await c.next()).kind).toBe('totp');
  });

  it('renews a short-lived token a quarter of its life early, not 30 s early', async () => {
    let now = 1_700_000_000_000;
    const c = new Credentials(file, () => now);
    await c.next();
    c.acceptSession(`v1.${now / 1000 + 12}.n.m`); // a 12 s token (sessionLifetime may be 10 s)
    expect(c.hasUsableSession()).toBe(true);
    now += 8_900;
    expect(c.hasUsableSession()).toBe(true);
    now += 200; // past 12 s - 3 s
    expect(c.hasUsableSession()).toBe(false);
  });

  it('never hands out a second code in the same time step', async () => {
    let now = 1_700_000_020_000; // 10 s into a 30 s step (1_700_000_010 is a multiple of 30)
    const c = new Credentials(file, () => now);
    await c.next();
    expect(c.msUntilFreshCode()).toBe(20_000);
    now += 19_999;
    expect(c.msUntilFreshCode()).toBe(1);
    now += 1;
    expect(c.msUntilFreshCode()).toBe(0);
  });

  it('waits for the next step when the session is dropped within a spent step', async () => {
    // The clock records each read: the last read before a code is returned is its issue time.
    const reads: number[] = [];
    const c = new Credentials({ ...file, period: 1 }, () => {
      const t = Date.now();
      reads.push(t);
      return t;
    });
    const a = await c.next();
    const stepA = Math.floor(reads.at(-1)! / 1000);
    c.acceptSession('v1.99999999999.n.m');
    expect((await c.next()).kind).toBe('session');
    c.dropSession();
    const b = await c.next();
    const stepB = Math.floor(reads.at(-1)! / 1000);
    expect(a.kind).toBe('totp');
    expect(b.kind).toBe('totp');
    expect(stepB).toBeGreaterThan(stepA);
  });

  it('is abortable while waiting for the next step', async () => {
    const c = new Credentials(file);
    await c.next();
    const ac = new AbortController();
    const p = c.next(ac.signal);
    ac.abort();
    await expect(p).rejects.toThrow(/abort/i);
  });
});
