/**
 * Attacks on the TOTP credential: replaying a code seen on the wire (also across a daemon
 * restart), guessing codes for a known ID (1,000 of them, in parallel), stealing a session
 * token, probing whether an ID exists, and IDs named after Object.prototype members (a store
 * that keeps state in plain objects would never lock those out).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { totpCode } from '../../src/auth/totp.js';
import type { AgentFile } from '../../src/protocol/agent-file.js';
import { pollUntil } from '../helpers/net.js';
import { authState, spray, type Attempt } from './attacks.js';
import { TestDaemon, wrongCodes, type Reply } from './daemon.js';

describe('credentials: replay, brute force, enumeration', () => {
  let d: TestDaemon;
  let agent: AgentFile;
  let victim: AgentFile;
  let protoNamed: AgentFile;
  let probe: AgentFile;

  beforeAll(async () => {
    // A long first lock so that the whole brute force runs inside it; no per-address limit here
    // (tested on its own below) so that the count seen is the lock-out's alone.
    d = TestDaemon.create({ lockoutThreshold: 5, lockoutBase: 120, lockoutMax: 900, failuresPerAddress: 1_000_000 });
    await d.start();
    [agent, victim, protoNamed, probe] = await Promise.all([
      d.createEntry(['replay']),
      d.createEntry(['victim']),
      d.createEntry(['constructor'], 'constructor'),
      d.createEntry(['probe']),
    ]);
  });
  afterAll(async () => {
    await d?.dispose();
  });

  it('a code accepted once is refused when replayed, also after a daemon restart', async () => {
    const code = totpCode(agent.secret);
    expect((await d.register(agent, 'replay', code)).status).toBe(200);
    const again = await d.register(agent, 'replay', code);
    expect(again.status).toBe(401);
    expect(JSON.parse(again.body).errorCode).toBe('TAAS_AUTH_FAILED');

    await d.stop();
    await d.start();
    const afterRestart = await d.register(agent, 'replay', code);
    expect(afterRestart.status).toBe(401);
    // The attempt log tells replay from a wrong code: the refusal was the guard, not the clock.
    const attempts = (await d.admin(`/api/entries/${agent.id}/attempts`)).body as Attempt[];
    expect(attempts.map((a) => a.result).slice(0, 3)).toEqual(['replay', 'replay', 'ok']);
  });

  it('1,000 guessed codes, 10 in flight: locked out after the configured 5, the lock visible', async () => {
    const t0 = Date.now();
    const replies = await spray(d, victim, wrongCodes(victim.secret, 1000), 10);
    const elapsed = Date.now() - t0;
    const byStatus = new Map<number, number>();
    for (const r of replies) byStatus.set(r.status, (byStatus.get(r.status) ?? 0) + 1);
    // Exactly the threshold got an answer about the code; everything after it hit the lock.
    expect(byStatus.get(401)).toBe(5);
    expect(byStatus.get(429)).toBe(995);
    const locked = replies.find((r) => r.status === 429)!;
    expect(JSON.parse(locked.body).errorCode).toBe('TAAS_LOCKED_OUT');
    expect(Number(locked.headers['retry-after'])).toBeGreaterThan(60);
    // While locked, even the right code is refused: the lock is not an oracle for guesses.
    expect((await d.register(victim, 'victim')).status).toBe(429);

    // Visible to the operator: the auth state and the attempt log (capped).
    const st = authState(d, victim.id)!;
    expect(st.failures).toBe(5);
    expect(st.lockedUntil).toBeGreaterThan(Date.now() + 60_000);
    const attempts = (await d.admin(`/api/entries/${victim.id}/attempts?limit=100`)).body as Attempt[];
    expect(attempts.length).toBe(100);
    // The log is capped per ID (1,000 attempts made, 100 kept), so a flood cannot grow the store.
    const stored = () => JSON.parse(fs.readFileSync(path.join(d.dataDir, 'state.json'), 'utf8')).attempts[victim.id]?.length;
    await pollUntil(() => stored() === 100, 5000, 50); // history is written in batches
    expect(attempts[0]!.result).toBe('locked');
    expect(attempts[0]!.from).toMatch(/127\.0\.0\.1/);
    await d.untilOutput(() => /ID locked out after failed attempts/.test(d.output), 'the lock-out logged'); // the log is asynchronous
    console.log(`brute force: 1000 requests in ${elapsed} ms; 401 x5, 429 x995`);
  });

  it('an ID named like an Object.prototype member is locked out too, and can register', async () => {
    // The replay guard, the attempt log and the pairing history all key on it.
    const ok = await d.register(protoNamed, 'constructor');
    expect(ok.status).toBe(200);
    const pairings = await d.request('GET', '/pairings/constructor', { authorization: `TAAS-Session username="constructor", token="${ok.headers['taas-session']}"` });
    expect(pairings.status).toBe(200);
    expect(JSON.parse(pairings.body)).toEqual([]);
    const replies = await spray(d, protoNamed, wrongCodes(protoNamed.secret, 20), 1);
    expect(replies.map((r) => r.status)).toEqual([...Array(5).fill(401), ...Array(15).fill(429)]);
    expect(authState(d, 'constructor')?.failures).toBe(5);
  });

  it('a session token works only for its ID, from its address, until the secret is rotated', async () => {
    const [owner, other] = await Promise.all([d.createEntry(['sess']), d.createEntry(['sess2'])]);
    const first = await d.register(owner, 'sess');
    expect(first.status).toBe(200);
    const token = first.headers['taas-session'] as string;
    expect((await d.registerWithSession(owner, 'sess', token)).status).toBe(200);
    // Stolen and replayed from elsewhere (checkSourceAddress binds it to the registering address).
    expect((await d.registerWithSession(owner, 'sess', token, '127.0.0.2')).status).toBe(401);
    // Presented for another ID.
    expect((await d.registerWithSession(other, 'sess2', token)).status).toBe(401);
    // Tampered with: a later expiry.
    const [v, exp, nonce, mac] = token.split('.');
    expect((await d.registerWithSession(owner, 'sess', [v, Number(exp) + 86_400, nonce, mac].join('.'))).status).toBe(401);
    // Revoked by rotating the entry's secret (a compromised hidden server is cut off).
    const key = fs.readFileSync(path.join(d.dataDir, 'admin.key'), 'utf8').trim();
    const rot = await fetch(`${d.adminUrl}/api/entries/${owner.id}/rotate-secret`, { method: 'POST', headers: { 'x-api-key': key } });
    expect(rot.status).toBe(200);
    await rot.text();
    expect((await d.registerWithSession(owner, 'sess', token)).status).toBe(401);
  });

  it('a lock-out by a stranger neither stops a running agent nor is lifted by it', async () => {
    const busy = await d.createEntry(['busy']);
    const first = await d.register(busy, 'busy');
    expect(first.status).toBe(200);
    const session = first.headers['taas-session'] as string;
    // A stranger who knows the ID locks it out.
    const guesses = await spray(d, busy, wrongCodes(busy.secret, 8), 1);
    expect(guesses.map((r) => r.status)).toEqual([401, 401, 401, 401, 401, 429, 429, 429]);
    // The running agent renews with its session token (a 256-bit MAC, not a guessable code): not locked out.
    const renewed = await d.registerWithSession(busy, 'busy', session);
    expect(renewed.status).toBe(200);
    // Its success does not reset the stranger's count: otherwise every pool registration would
    // hand the stranger lockoutThreshold more guesses.
    expect((await d.register(busy, 'busy', wrongCodes(busy.secret, 9)[8])).status).toBe(429);
    expect(authState(d, busy.id)?.failures).toBeGreaterThanOrEqual(5);
    // A forged session token is no way around the lock.
    expect((await d.registerWithSession(busy, 'busy', session.slice(0, -2) + 'AA')).status).toBe(429);
  });

  it('an unknown ID and a wrong code for a known ID get the same answer', async () => {
    const fresh = probe;
    const known = await d.register(fresh, 'probe', wrongCodes(fresh.secret, 1)[0]);
    const unknown = await d.register({ ...fresh, id: '5d0c4f0e-0000-4000-8000-000000000000' }, 'probe', wrongCodes(fresh.secret, 1)[0]);
    const strip = (r: Reply) => ({ status: r.status, body: r.body, headers: { ...r.headers, date: undefined } });
    expect(strip(known)).toEqual(strip(unknown));
    expect(known.status).toBe(401);
    expect(known.headers['www-authenticate']).toBe('TOTP realm="taas"');
  });
});
