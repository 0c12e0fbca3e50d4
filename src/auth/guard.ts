/**
 * Authenticates a registrar request: TOTP code or session token, with the replay guard, the
 * per-ID lock-out (failures in a row → growing delays) and the per-address failure limit.
 * Unknown IDs and wrong codes take the same path (a TOTP check against a dummy secret, the
 * same failure counting) so that neither status nor timing tells them apart.
 */
import crypto from 'node:crypto';
import type { Logger } from 'pino';
import type { ConfigView } from '../config/view.js';
import { TaasError, isTaasError } from '../errors.js';
import { addressBucket } from '../protocol/address.js';
import { authScheme, parseSessionAuthorization, verifySessionToken } from '../protocol/session.js';
import { parseTotpAuthorization } from '../protocol/totp-header.js';
import type { AuthState, Entry, Store } from '../store/types.js';
import { totpCode, verifyTotp } from './totp.js';

/** A well-formed secret that matches no one: unknown IDs are checked against it. */
const DUMMY_SECRET = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP';
/** Window of the per-address failure count. */
const ADDRESS_WINDOW_S = 60;
/** The TOTP window is ±1 step, so a used step needs guarding for three periods. */
const STEPS_GUARDED = 3;
const PERIOD_S = 30;

export type AuthResult = 'ok' | 'bad-code' | 'replay' | 'locked' | 'rate-limited' | 'bad-session';

export interface Authenticated {
  entry: Entry;
  /** `reuse`: a code presented again within its step by the hidden server that first used it. */
  via: 'totp' | 'session' | 'reuse';
}

export class AuthFailure extends TaasError {
  constructor(
    readonly result: AuthResult,
    readonly id: string | null,
    code: 'TAAS_AUTH_FAILED' | 'TAAS_LOCKED_OUT' | 'TAAS_RATE_LIMITED',
    retryAfter?: number,
  ) {
    super(code, undefined, retryAfter === undefined ? {} : { retryAfter });
  }
}

/** While the store is unreachable the auth state is unknown: no failures, no lock (sessions only). */
function outageState(e: unknown): AuthState {
  if (isTaasError(e, 'TAAS_STORE_UNAVAILABLE')) return { failures: 0, lockedUntil: 0 };
  throw e;
}

export class Authenticator {
  /** Addresses over their failure limit, until the end of the window (local fast path). */
  private blocked = new Map<string, number>();

  constructor(
    private readonly store: Store,
    private readonly view: ConfigView,
    private readonly logger: Logger,
  ) {}

  /** The config of the moment (a SIGHUP reload applies to the next request). */
  private get config() {
    return this.view.current;
  }

  /** Session tokens are bound to the source address unless the operator switched that check off. */
  sessionBinding(address: string): string {
    return this.config.checkSourceAddress ? address : '';
  }

  /**
   * `opts.reuse`: the request is a registration, where an original-protocol hidden server may
   * present its code again within the step (see reuse()).
   */
  async authenticate(header: string | undefined, address: string, opts: { reuse?: boolean } = {}): Promise<Authenticated> {
    if (header === undefined || header.trim() === '') throw new TaasError('TAAS_AUTH_MISSING', 'Authorization: TOTP username="ID", response="TKN" is required');
    const scheme = authScheme(header);
    if (scheme === 'other') throw new TaasError('TAAS_AUTH_MALFORMED', 'malformed Authorization header: scheme must be TOTP');
    const cred = scheme === 'totp' ? parseTotpAuthorization(header) : parseSessionAuthorization(header);

    const now = Date.now();
    const bucket = addressBucket(address);
    const blockedUntil = this.blocked.get(bucket);
    if (blockedUntil !== undefined) {
      if (blockedUntil > now) throw new AuthFailure('rate-limited', cred.id, 'TAAS_RATE_LIMITED', Math.ceil((blockedUntil - now) / 1000));
      this.blocked.delete(bucket);
    }
    // A session token needs no shared state to be checked (its MAC and the entry's secret), so
    // it is accepted through a store outage, with the entry as this node last read it; a bad one
    // is refused with the outage's 503 when its failure cannot be counted (SECURITY.md).
    const state = scheme === 'session' ? await this.store.getAuthState(cred.id).catch(outageState) : await this.store.getAuthState(cred.id);
    const entry = await this.store.getEntry(cred.id);
    if (scheme === 'session') return this.session(cred.id, cred.token, entry, state, address, bucket, now);
    if (state.lockedUntil > now) throw new AuthFailure('locked', cred.id, 'TAAS_LOCKED_OUT', Math.ceil((state.lockedUntil - now) / 1000));
    if (opts.reuse && entry && (await this.reuse(entry, cred.token, bucket, now))) return { entry, via: 'reuse' };
    // The attempt is counted before it is checked. The count is atomic in either store, so
    // however many requests are in flight (or nodes share the store), at most lockoutThreshold
    // codes are checked before the lock, and one per lock period after it. Counting after the
    // check let every request already past the lock test be checked too (24 instead of 5 with
    // 50 in flight against Redis).
    const c = this.config;
    const failures = await this.store.incrFailures(cred.id, this.failureTtl());
    const firstAfterLock = state.lockedUntil > 0 && failures === state.failures + 1;
    if (failures > c.lockoutThreshold && !firstAfterLock) {
      throw new AuthFailure('locked', cred.id, 'TAAS_LOCKED_OUT', Math.max(1, Math.ceil(this.lockSeconds(failures - 1))));
    }
    const step = verifyTotp(entry?.secret ?? DUMMY_SECRET, cred.token);
    let result: AuthResult;
    if (step === null || !entry) result = 'bad-code';
    else result = (await this.store.claimTotpStep(cred.id, step, STEPS_GUARDED * PERIOD_S, bucket)) ? 'ok' : 'replay';
    if (result === 'ok' && entry) {
      await this.store.resetFailures(cred.id);
      return { entry, via: 'totp' };
    }
    await this.countFailure(cred.id, bucket, failures);
    throw new AuthFailure(result, cred.id, 'TAAS_AUTH_FAILED');
  }

  /**
   * A session token is a 256-bit MAC, not a six-digit code: the lock-out, which bounds guessing,
   * has nothing to protect here. So a genuine token passes even while the ID is locked (a
   * stranger who knows an ID cannot cut off its running agent), and its success leaves the
   * failure count alone (else every pool registration would hand the stranger another
   * lockoutThreshold guesses). A bad token counts as a failure like a wrong code.
   */
  private async session(id: string, token: string, entry: Entry | null, state: AuthState, address: string, bucket: string, now: number): Promise<Authenticated> {
    const ok = verifySessionToken(entry?.secret ?? DUMMY_SECRET, id, token, this.sessionBinding(address));
    if (ok && entry) return { entry, via: 'session' };
    if (state.lockedUntil > now) throw new AuthFailure('locked', id, 'TAAS_LOCKED_OUT', Math.ceil((state.lockedUntil - now) / 1000));
    await this.countFailure(id, bucket, await this.store.incrFailures(id, this.failureTtl()));
    throw new AuthFailure('bad-session', id, 'TAAS_AUTH_FAILED');
  }

  /**
   * Original hidden servers build their pool by sending the same code again at once after each
   * 200 (the original server accepted that). Such a reuse passes only where the operator admits
   * original-protocol hidden servers (allowCookieless), only with the code of the current step
   * (never a neighbour step the ±1 window accepts), only from the address bucket that first used
   * the step, and at most codeReusePerStep times per step (counted atomically in the store, so
   * across nodes too). It is neither a failure nor a success that resets the failure count: a
   * stranger gains no guesses from it. Anything else falls through to the counted path, where a
   * second use of a step is a replay as before. Checked before counting: only the right code
   * from the right bucket passes here, so no guess is spared the count.
   */
  private async reuse(entry: Entry, token: string, bucket: string, now: number): Promise<boolean> {
    const max = this.config.codeReusePerStep;
    if (!this.config.allowCookieless || max === 0) return false;
    const want = Buffer.from(totpCode(entry.secret, {}, now));
    const got = Buffer.from(token);
    if (want.length !== got.length || !crypto.timingSafeEqual(want, got)) return false;
    return this.store.reuseTotpStep(entry.id, Math.floor(now / 1000 / PERIOD_S), bucket, max);
  }

  private failureTtl(): number {
    return Math.max(this.config.lockoutMax * 2, 3600);
  }

  /** Doubling from lockoutBase with each failure past the threshold, capped at lockoutMax. */
  private lockSeconds(failures: number): number {
    const c = this.config;
    return Math.min(c.lockoutBase * 2 ** Math.max(0, failures - c.lockoutThreshold), c.lockoutMax);
  }

  /** A checked attempt failed (already counted): lock the ID at the threshold, count the address bucket. */
  private async countFailure(id: string, bucket: string, failures: number): Promise<void> {
    const c = this.config;
    if (failures >= c.lockoutThreshold) {
      const seconds = this.lockSeconds(failures);
      await this.store.setLockedUntil(id, Date.now() + seconds * 1000, this.failureTtl());
      this.logger.warn({ id, failures, lockSeconds: seconds }, 'ID locked out after failed attempts');
    }
    const fromAddress = await this.store.incrAddressFailures(bucket, ADDRESS_WINDOW_S);
    if (fromAddress >= c.failuresPerAddress) {
      const windowEnd = (Math.floor(Date.now() / (ADDRESS_WINDOW_S * 1000)) + 1) * ADDRESS_WINDOW_S * 1000;
      this.blocked.set(bucket, windowEnd);
      if (this.blocked.size > 100_000) this.blocked.clear();
      this.logger.warn({ address: bucket, failures: fromAddress }, 'address rate-limited after failed attempts');
    }
  }
}
