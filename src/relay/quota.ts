/**
 * `quota` of a label's policy: octets per UTC day (both directions), after which new pairings
 * are refused until the next day. The one owner of each label's count of the day on this node.
 * The count is the larger of what this node has seen end here (added at once, so one node is
 * exact at each pairing's end) and what the store holds for the day (every node's pairings:
 * the daily counts each node adds when a pairing ends), read again at most every REFRESH_MS
 * per label, and by the registrar before each 307 of a label with a quota.
 *
 * Octets count when a pairing ends: one pairing may run past the quota; the next is refused.
 */

/** A label's day count is read from the store at most this often (per label with a quota). */
const REFRESH_MS = 1000;
/**
 * The registrar waits at most this for the read before its 307: a store slow to answer (an
 * outage being retried) delays a client this much, never longer; the count known is used then.
 */
export const QUOTA_READ_WAIT_MS = 500;

export type DailyBytes = (label: string, day: string) => Promise<number>;

interface Count {
  day: string;
  bytes: number;
  /** performance.now() of the last read from the store, 0: never. */
  readAt: number;
  reading: Promise<void> | null;
}

const DAY_MS = 86_400_000;
/** The day asked last, kept: admission asks on every connection of a label with a quota. */
let cachedDay = { start: 0, day: '1970-01-01' };

export function utcDay(ms: number): string {
  if (ms >= cachedDay.start && ms - cachedDay.start < DAY_MS) return cachedDay.day;
  const start = Math.floor(ms / DAY_MS) * DAY_MS;
  cachedDay = { start, day: new Date(start).toISOString().slice(0, 10) };
  return cachedDay.day;
}

/** Seconds until the next UTC day begins (at least 1): a refused client's Retry-After. */
export function secondsToNextDay(ms: number): number {
  const next = new Date(ms);
  next.setUTCHours(24, 0, 0, 0);
  return Math.max(1, Math.ceil((next.getTime() - ms) / 1000));
}

export class QuotaBook {
  private readonly counts = new Map<string, Count>();

  constructor(
    /** The store's count of the day (null: one node, nothing but this node's own). */
    private readonly read: DailyBytes | null,
    private readonly onReadError: (label: string, err: unknown) => void,
  ) {}

  private of(label: string, day: string): Count {
    let c = this.counts.get(label);
    if (!c || c.day !== day) this.counts.set(label, (c = { day, bytes: 0, readAt: 0, reading: null }));
    return c;
  }

  /** Whether `label` has used its quota of today (as far as this node knows now). */
  over(label: string, quota: number, now = Date.now()): boolean {
    const c = this.of(label, utcDay(now));
    if (this.read && performance.now() - c.readAt >= REFRESH_MS) void this.refresh(label, now);
    return c.bytes >= quota;
  }

  /** A pairing of `label` ended at `endMs` having moved `bytes` octets. */
  add(label: string, bytes: number, endMs: number): void {
    if (!this.counts.has(label)) return; // no quota asked of this label: nothing to keep
    this.of(label, utcDay(endMs)).bytes += bytes;
  }

  /** refresh, waited for at most `ms`. */
  async refreshWithin(label: string, ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.refresh(label), new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
  }

  /** Reads the day's count from the store now (one read at a time per label). */
  refresh(label: string, now = Date.now()): Promise<void> {
    const c = this.of(label, utcDay(now));
    if (!this.read) return Promise.resolve();
    c.reading ??= this.read(label, c.day)
      .then(
        (bytes) => {
          c.bytes = Math.max(c.bytes, bytes);
        },
        (e) => this.onReadError(label, e),
      )
      .finally(() => {
        c.readAt = performance.now();
        c.reading = null;
      });
    return c.reading;
  }
}
