/**
 * What the agent sends as Authorization. The relay's replay guard accepts each (ID, time step)
 * once, so a TOTP code is spent at most once per step: a pool of N registrations uses one code,
 * then the `TAAS-Session` token that the registrar returned with the 200, keeping the newest.
 * When the token is refused or close to expiry the agent falls back to a fresh code, waiting
 * for the next step if this one was already spent.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { totpCode } from '../auth/totp.js';
import { formatSessionAuthorization, formatTotpAuthorization, sessionTokenExpiry, type AgentFile } from '../protocol/index.js';

/**
 * Renew this long before a token's expiry: covers clock skew between agent and relay and a slow
 * request. Short-lived tokens (sessionLifetime may be 10 s) renew a quarter of their life early instead.
 */
export const SESSION_RENEW_MARGIN_MS = 30_000;

export interface Authorization {
  kind: 'totp' | 'session';
  header: string;
}

export class Credentials {
  private session: { token: string; expiresMs: number; marginMs: number } | null = null;
  private lastStep = -1;

  constructor(
    private readonly file: Pick<AgentFile, 'id' | 'secret' | 'algorithm' | 'digits' | 'period'>,
    private readonly now: () => number = Date.now,
  ) {}

  private step(atMs: number): number {
    return Math.floor(atMs / 1000 / this.file.period);
  }

  /** True when the next authorization would use a session token. */
  hasUsableSession(): boolean {
    return this.session !== null && this.session.expiresMs - this.session.marginMs > this.now();
  }

  /** Milliseconds until a fresh TOTP code may be used (0 when this step is unspent). */
  msUntilFreshCode(): number {
    const now = this.now();
    if (this.step(now) !== this.lastStep) return 0;
    const periodMs = this.file.period * 1000;
    return (this.lastStep + 1) * periodMs - now;
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
    const at = this.now();
    this.lastStep = this.step(at);
    const token = totpCode(this.file.secret, { algorithm: this.file.algorithm, digits: this.file.digits, period: this.file.period }, at);
    return { kind: 'totp', header: formatTotpAuthorization({ id: this.file.id, token }) };
  }

  /**
   * Gives back a code whose request provably never reached a relay (the connection was refused
   * or TLS failed before the request was sent), so a retry in the same step need not wait.
   */
  refund(auth: Authorization): void {
    if (auth.kind === 'totp') this.lastStep = -1;
  }

  /** Keeps the newest token the registrar returned; one without a readable expiry is used until refused. */
  acceptSession(token: string): void {
    const expiresMs = sessionTokenExpiry(token) ?? Number.MAX_SAFE_INTEGER;
    const lifeMs = Math.max(0, expiresMs - this.now());
    this.session = { token, expiresMs, marginMs: Math.min(SESSION_RENEW_MARGIN_MS, lifeMs / 4) };
  }

  /** The relay refused the token (401): the next registration authenticates with a code. */
  dropSession(): void {
    this.session = null;
  }
}
