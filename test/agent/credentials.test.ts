import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CredentialState } from '../../src/agent/credential-state.js';
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

  it('uses the next step’s code once the current one is spent, and never a code twice', async () => {
    let now = 1_700_000_020_000; // 10 s into a 30 s step (1_700_000_010 is a multiple of 30)
    const c = new Credentials(file, () => now);
    const a = await c.next();
    expect(parseTotpAuthorization(a.header).token).toBe(totpCode(TEST_SECRET, {}, now));
    expect(c.msUntilFreshCode()).toBe(0);
    const b = await c.next();
    expect(parseTotpAuthorization(b.header).token).toBe(totpCode(TEST_SECRET, {}, now + 30_000));
    // Both spent: the next code comes once the next step has begun (its successor is then usable).
    expect(c.msUntilFreshCode()).toBe(20_000);
    now += 20_000;
    expect(c.msUntilFreshCode()).toBe(0);
    expect(parseTotpAuthorization((await c.next()).header).token).toBe(totpCode(TEST_SECRET, {}, now + 30_000));
  });

  it('a refund gives back only the code just handed out', async () => {
    const now = 1_700_000_020_000;
    const c = new Credentials(file, () => now);
    const a = await c.next();
    const b = await c.next();
    c.refund(b);
    expect(parseTotpAuthorization((await c.next()).header).token).toBe(parseTotpAuthorization(b.header).token);
    expect(a.header).not.toBe(b.header);
  });

  it('waits when the session is dropped within a step whose successor is spent too', async () => {
    const reads: number[] = [];
    const c = new Credentials({ ...file, period: 1 }, () => {
      const t = Date.now();
      reads.push(t);
      return t;
    });
    await c.next();
    await c.next(); // current and next step spent
    c.acceptSession('v1.99999999999.n.m');
    expect((await c.next()).kind).toBe('session');
    c.dropSession();
    const before = reads.at(-1)!;
    const b = await c.next();
    expect(b.kind).toBe('totp');
    expect(Math.floor(reads.at(-1)! / 1000)).toBeGreaterThan(Math.floor(before / 1000));
  });

  it('is abortable while waiting for the next step', async () => {
    const c = new Credentials(file);
    await c.next();
    await c.next();
    const ac = new AbortController();
    const p = c.next(ac.signal);
    ac.abort();
    await expect(p).rejects.toThrow(/abort/i);
  });
});

describe('Credentials kept across a restart (CredentialState)', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });
  const stateFile = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'taas-cred-'));
    dirs.push(d);
    return path.join(d, 'agent.json.state');
  };

  it('a new process holds the saved token at once, and the file is 0600', async () => {
    const f = stateFile();
    const now = 1_700_000_020_000;
    const first = new Credentials(file, () => now, new CredentialState(f));
    await first.next();
    first.acceptSession(`v1.${now / 1000 + 600}.n.mac`);
    expect(fs.statSync(f).mode & 0o777).toBe(0o600);
    const second = new Credentials(file, () => now + 1000, new CredentialState(f));
    const auth = await second.next();
    expect(auth.kind).toBe('session');
    expect(parseSessionAuthorization(auth.header).token).toBe(`v1.${now / 1000 + 600}.n.mac`);
  });

  it('saves a newer token only when it outlives the saved one by 30 s (a quarter of a short life)', async () => {
    const f = stateFile();
    let now = 1_700_000_020_000;
    const c = new Credentials(file, () => now, new CredentialState(f));
    const saved = () => JSON.parse(fs.readFileSync(f, 'utf8')).session;
    c.acceptSession(`v1.${now / 1000 + 600}.a.m`);
    expect(saved()).toBe(`v1.${now / 1000 + 600}.a.m`);
    now += 10_000;
    c.acceptSession(`v1.${now / 1000 + 600}.b.m`); // only 10 s longer: not worth an fsync
    expect(saved()).toBe(`v1.${(now - 10_000) / 1000 + 600}.a.m`);
    now += 20_000;
    c.acceptSession(`v1.${now / 1000 + 600}.c.m`);
    expect(saved()).toBe(`v1.${now / 1000 + 600}.c.m`);
    now += 1_000;
    c.acceptSession(`v1.${now / 1000 + 12}.d.m`); // a 12 s token cannot outlive the saved 600 s one
    expect(saved()).toBe(`v1.${(now - 1_000) / 1000 + 600}.c.m`);
  });

  it('without a token, a new process in the same step uses the next step’s code instead of the spent one', async () => {
    const f = stateFile();
    const now = 1_700_000_020_000;
    const killed = new Credentials(file, () => now, new CredentialState(f));
    await killed.next(); // sent, then the process died before the 200
    const again = new Credentials(file, () => now + 500, new CredentialState(f));
    expect(parseTotpAuthorization((await again.next()).header).token).toBe(totpCode(TEST_SECRET, {}, now + 30_000));
    const third = new Credentials(file, () => now + 1000, new CredentialState(f));
    expect(third.msUntilFreshCode()).toBe(19_000);
  });

  it('a saved step far ahead (the clock set back since) costs at most the rest of one step', async () => {
    const f = stateFile();
    const now = 1_700_000_020_000;
    new CredentialState(f).save({ id: 'agent-1', session: null, lastStep: Math.floor(now / 30_000) + 100 });
    const c = new Credentials(file, () => now, new CredentialState(f));
    expect(c.msUntilFreshCode()).toBe(20_000);
  });

  it('ignores a state of another ID, and one that is not JSON, and runs on when it cannot write', async () => {
    const f = stateFile();
    fs.writeFileSync(f, JSON.stringify({ id: 'someone-else', session: 'v1.99999999999.n.m', lastStep: 1 }));
    expect((await new Credentials(file, Date.now, new CredentialState(f)).next()).kind).toBe('totp');
    fs.writeFileSync(f, '{not json');
    const warnings: string[] = [];
    expect((await new Credentials(file, Date.now, new CredentialState(f, (m) => warnings.push(m))).next()).kind).toBe('totp');
    expect(warnings).toEqual([`credential state ${f} is not JSON; starting without it`]);
    const unwritable = new CredentialState(path.join(path.dirname(f), 'missing-dir', 'x.state'), (m) => warnings.push(m));
    expect((await new Credentials(file, Date.now, unwritable).next()).kind).toBe('totp');
    expect(warnings[1]).toMatch(/cannot write credential state .*ENOENT/);
  });
});
