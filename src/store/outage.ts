/**
 * A store outage as the daemon sees it: whether the store is away, since when and why, and
 * what happened meanwhile (reads answered from the copy, calls refused, records queued). The
 * one owner of that state, used by the store wrapper (resilient-store.ts); it writes the
 * outage's two log lines, one when it starts and one when it ends with the counts.
 */
import type { Logger } from 'pino';
import { TaasError, isTaasError, oneLine } from '../errors.js';

/** What a 503 refused during an outage tells the client: the store is probed every 200 ms. */
export const OUTAGE_RETRY_AFTER_S = 2;

/** File-system errors that mean "the data dir cannot be written now", not a bug. */
const FS_UNAVAILABLE = new Set(['ENOSPC', 'EROFS', 'EDQUOT', 'EIO', 'EACCES', 'EPERM', 'ENOENT']);

export const unavailable = (message = 'the store cannot be reached right now', cause?: unknown): TaasError =>
  new TaasError('TAAS_STORE_UNAVAILABLE', message, { retryAfter: OUTAGE_RETRY_AFTER_S, ...(cause === undefined ? {} : { cause }) });

/** The error as store unavailability (a TaasError 503, or a file-system refusal), or null for anything else. */
export function asUnavailable(e: unknown): TaasError | null {
  if (isTaasError(e, 'TAAS_STORE_UNAVAILABLE')) return e;
  const code = (e as NodeJS.ErrnoException)?.code;
  if (!isTaasError(e) && typeof code === 'string' && FS_UNAVAILABLE.has(code)) return unavailable('the data dir cannot be written right now', e);
  return null;
}

/** Counts over the daemon's life, for metrics. */
export interface OutageTotals {
  outages: number;
  cacheAnswers: number;
  refused: number;
}

interface Current {
  since: number;
  reason: string;
  cacheAnswers: number;
  refused: number;
  queued: number;
}

export class StoreOutage {
  private current: Current | null = null;
  readonly totals: OutageTotals = { outages: 0, cacheAnswers: 0, refused: 0 };

  constructor(
    private readonly kind: string,
    private readonly logger: Logger,
  ) {}

  get down(): boolean {
    return this.current !== null;
  }

  /** Epoch ms the current outage started, or null. */
  get since(): number | null {
    return this.current?.since ?? null;
  }

  /** Starts an outage (once: later calls during it do nothing); `context` goes into its log line. Returns true when it started now. */
  start(e: TaasError, context: Record<string, unknown>): boolean {
    if (this.current) return false;
    const cause = (e as { cause?: unknown }).cause;
    this.current = { since: Date.now(), reason: cause ? oneLine(cause) : e.message, cacheAnswers: 0, refused: 0, queued: 0 };
    this.totals.outages++;
    this.logger.warn(
      { store: this.kind, reason: this.current.reason, ...context },
      'store unreachable: serving mobile clients from what this node knows; registrations by TOTP and admin writes get 503 until it returns',
    );
    return true;
  }

  /** Ends the outage; `context` (what was written on return) goes into its log line with the counts. */
  end(context: (during: { queued: number }) => Record<string, unknown>): void {
    const o = this.current;
    if (!o) return;
    this.current = null;
    this.logger.info({ store: this.kind, downMs: Date.now() - o.since, servedFromCache: o.cacheAnswers, refused: o.refused, ...context(o) }, 'store reachable again');
  }

  /** A read answered from the copy. */
  served(): void {
    this.totals.cacheAnswers++;
    if (this.current) this.current.cacheAnswers++;
  }

  /** A call refused with 503; returns the error to throw. */
  refuse(): TaasError {
    this.totals.refused++;
    if (this.current) this.current.refused++;
    return unavailable();
  }

  /** A record queued for the store's return. */
  queued(): void {
    if (this.current) this.current.queued++;
  }

  /** The reason for /readyz: how long, and what is served meanwhile (no driver internals). */
  describe(): string {
    const s = this.current ? Math.round((Date.now() - this.current.since) / 1000) : 0;
    return `the ${this.kind} store has been unreachable for ${s} s; mobile clients are served from this node's copy, registrations by TOTP and admin writes are refused`;
  }
}
