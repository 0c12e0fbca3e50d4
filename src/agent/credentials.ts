/**
 * What the agent sends as Authorization. The relay's replay guard accepts each (ID, time step)
 * once, so a TOTP code is spent at most once per step: a pool of N registrations uses one code,
 * then the `TAAS-Session` token that the registrar returned with the 200, keeping the newest.
 * When the token is refused or close to expiry the agent falls back to a fresh code: the
 * current step's, or, when that one is spent, the next step's (the relay accepts ±1 step), and
 * only when both are spent does it wait. With a CredentialState the token and the last spent
 * step outlive the process, so a restarted agent registers at once (credential-state.ts).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { totpCode } from '../auth/totp.js';
import { formatSessionAuthorization, formatTotpAuthorization, sessionTokenExpiry, type AgentFile } from '../protocol/index.js';
import type { CredentialState } from './credential-state.js';

/**
 * Renew this long before a token's expiry: covers clock skew between agent and relay and a slow
 * request. Short-lived tokens (sessionLifetime may be 10 s) renew a quarter of their life early instead.
 */
export const SESSION_RENEW_MARGIN_MS = 30_000;

export interface Authorization {
  kind: 'totp' | 'session';
  header: string;
}

/** A new token is written to the state file only when it outlives the saved one by this much: not one fsync per registration. */
const SAVE_AFTER_MS = 30_000;

export class Credentials {
  private session: { token: string; expiresMs: number; marginMs: number } | null = null;
  /** The highest step whose code was handed out (-1: none); the one before, for refund(). */
  private lastStep = -1;
  private stepBefore = -1;
  private savedExpiryMs = 0;

  constructor(
    private readonly file: Pick<AgentFile, 'id' | 'secret' | 'algorithm' | 'digits' | 'period'>,
    private readonly now: () => number = Date.now,
    private readonly state: CredentialState | null = null,
  ) {
    const saved = state?.load(file.id);
    if (!saved) return;
    // Never beyond the next step: a clock set back since must not park the agent for hours.
    this.lastStep = Math.min(saved.lastStep, this.step(now()) + 1);
    if (saved.session) {
      this.acceptSession(saved.session, false);
      this.savedExpiryMs = this.session!.expiresMs;
    }
  }

  private step(atMs: number): number {
    return Math.floor(atMs / 1000 / this.file.period);
  }

  /** True when the next authorization would use a session token. */
  hasUsableSession(): boolean {
    return this.session !== null && this.session.expiresMs - this.session.marginMs > this.now();
  }

  /**
   * Milliseconds until a fresh TOTP code may be used: 0 while the current or the next step is
   * unspent, else until the next step begins (when its successor becomes usable).
   */
  msUntilFreshCode(): number {
    const now = this.now();
    if (this.lastStep <= this.step(now)) return 0;
    return this.lastStep * this.file.period * 1000 - now;
  }

  /**
   * The header for the next registration. A TOTP code is marked spent as it is handed out:
   * even a request that fails in transit may have reached the relay's replay guard.
   */
  async next(signal?: AbortSignal): Promise<Authorization> {
    if (this.hasUsableSession()) {
      return { kind: 'session', header: formatSessionAuthorization({ id: this.file.id, token: this.session!.token }) };
    }
    const wait = this.msUntilFreshCode();
    if (wait > 0) await sleep(wait + 5, undefined, { signal });
    const cur = this.step(this.now());
    // The current step unless it is spent; then the next one, which the relay's window accepts.
    const step = this.lastStep < cur ? cur : cur + 1;
    this.stepBefore = this.lastStep;
    this.lastStep = step;
    this.save();
    const periodMs = this.file.period * 1000;
    const token = totpCode(this.file.secret, { algorithm: this.file.algorithm, digits: this.file.digits, period: this.file.period }, step * periodMs);
    return { kind: 'totp', header: formatTotpAuthorization({ id: this.file.id, token }) };
  }

  /**
   * Gives back a code whose request provably never reached a relay (the connection was refused
   * or TLS failed before the request was sent), so a retry need not spend another step.
   */
  refund(auth: Authorization): void {
    if (auth.kind !== 'totp') return;
    this.lastStep = this.stepBefore;
    this.save();
  }

  /** Keeps the newest token the registrar returned; one without a readable expiry is used until refused. */
  acceptSession(token: string, persist = true): void {
    const expiresMs = sessionTokenExpiry(token) ?? Number.MAX_SAFE_INTEGER;
    const lifeMs = Math.max(0, expiresMs - this.now());
    this.session = { token, expiresMs, marginMs: Math.min(SESSION_RENEW_MARGIN_MS, lifeMs / 4) };
    // A short-lived token (sessionLifetime may be 10 s) is saved a quarter of its life apart instead.
    if (persist && expiresMs - this.savedExpiryMs >= Math.min(SAVE_AFTER_MS, lifeMs / 4)) this.save();
  }

  /** The relay refused the token (401): the next registration authenticates with a code. */
  dropSession(): void {
    this.session = null;
    this.save();
  }

  private save(): void {
    if (!this.state) return;
    this.savedExpiryMs = this.session?.expiresMs ?? 0;
    this.state.save({ id: this.file.id, session: this.session?.token ?? null, lastStep: this.lastStep });
  }
}
