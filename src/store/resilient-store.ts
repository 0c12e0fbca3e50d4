/**
 * The daemon's view of its store (issue 17): a Store that keeps the relay serving while the
 * real one (Redis, or a data dir that cannot be written) is unreachable, and loses nothing.
 *
 * - Entries: every entry as last read (entry-cache.ts), re-read at start, on every change
 *   notification and when an outage ends. While the store answers, reads go to it; while it
 *   does not, they are answered from the cache, so mobile clients of any label are sent to
 *   this node's idle responders. Entries changed elsewhere meanwhile take effect at the end.
 * - Records: pairings and attempts written during an outage wait in the outbox (outbox.ts)
 *   and are written, in order and once, when the store returns.
 * - Documents (API keys, admin sessions) as last read, so `/metrics` and other admin reads
 *   still authenticate; every write (entries, documents, the replay guard, failure counts,
 *   lock-outs) is refused with 503 while the store is away: nothing that guards
 *   authentication is ever answered from a copy.
 * - Health: `up` is local state, kept by a probe (a ping every second while up, every 200 ms
 *   while down), so monitoring never waits on the store. The outage is logged twice: one line
 *   when it starts, one when it ends with what happened in between (counts).
 */
import type { Logger } from 'pino';
import { type TaasError, oneLine } from '../errors.js';
import { DocCache } from './doc-cache.js';
import { EntryCache } from './entry-cache.js';
import { StoreListeners } from './listeners.js';
import { asUnavailable, StoreOutage, unavailable } from './outage.js';
import { type OutboxItem, RecordOutbox } from './outbox.js';
import type { AttemptRecord, AuthState, DailyCount, Entry, PairingRecord, Store, StoreEvent } from './types.js';

/** Probe period while the store answers: how soon an outage nobody hits is noticed (metrics). */
const PROBE_UP_MS = 1000;
/** Probe period during an outage: the store is used again within this of its return. */
const PROBE_DOWN_MS = 200;
/** A ping slower than this counts as down (a hung server would hold every request). */
const PROBE_TIMEOUT_MS = 1500;
/** At shutdown, how long records still waiting get to be written. */
const CLOSE_FLUSH_MS = 2000;

/** What health reports and metrics read: local state only, never a round trip. */
export interface StoreHealth {
  readonly up: boolean;
  stats(): OutageStats;
}

export interface OutageStats {
  up: boolean;
  /** Outages since start. */
  outages: number;
  /** Epoch ms the current outage started, or null. */
  downSince: number | null;
  /** Reads answered from the cache because the store was away, since start. */
  cacheAnswers: number;
  /** Calls refused with 503 because the store was away, since start. */
  refused: number;
  /** Records waiting in the outbox now. */
  outboxSize: number;
  outboxDropped: number;
  outboxDelivered: number;
  outboxDeduplicated: number;
  /** Records the store refused for good when they were written from the outbox (a fault, not an outage). */
  outboxRefused: number;
  /** Entries in the cache, and when they were read (epoch ms, 0 if never). */
  cachedEntries: number;
  entriesReadAt: number;
}

/** For the outbox: a failure that passes when the store returns (else the record is refused for good). */
const isTransient = (e: unknown): boolean => asUnavailable(e) !== null;

export class ResilientStore implements Store, StoreHealth {
  readonly kind: Store['kind'];
  private readonly cache = new EntryCache();
  private readonly outbox = new RecordOutbox();
  private readonly docs = new DocCache();
  private readonly listeners: StoreListeners;
  private readonly outage: StoreOutage;
  private refreshSeq = 0;
  private appliedSeq = 0;
  private recovering = false;
  /** Records dropped from the outbox before the current outage (the end line says how many during it). */
  private droppedBefore = 0;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly unwatch: () => void;

  private constructor(
    /** The real store (Redis or embedded). The directory talks to it directly. */
    readonly inner: Store,
    private readonly logger: Logger,
  ) {
    this.kind = inner.kind;
    this.listeners = new StoreListeners(logger);
    this.outage = new StoreOutage(inner.kind, logger);
    this.unwatch = inner.watch(() => void this.changed());
  }

  /**
   * Wraps a store and reads its entries, and the documents of `preloadDocs` (the admin plane's
   * API keys: a Prometheus key must work through an outage even if it was not used before).
   * A store that does not answer starts the node in an outage.
   */
  static async open(inner: Store, logger: Logger, opts: { preloadDocs?: readonly string[] } = {}): Promise<ResilientStore> {
    const s = new ResilientStore(inner, logger);
    try {
      await s.refresh();
      for (const ns of opts.preloadDocs ?? []) await s.listDocs(ns);
    } catch (e) {
      const u = asUnavailable(e);
      if (!u) throw e;
      s.markDown(u);
    }
    s.schedule();
    return s;
  }

  get up(): boolean {
    return !this.outage.down;
  }

  stats(): OutageStats {
    return {
      up: this.up,
      ...this.outage.totals,
      downSince: this.outage.since,
      outboxSize: this.outbox.size,
      outboxDropped: this.outbox.dropped,
      outboxDelivered: this.outbox.delivered,
      outboxDeduplicated: this.outbox.deduplicated,
      outboxRefused: this.outbox.failed,
      cachedEntries: this.cache.size,
      entriesReadAt: this.cache.readAt,
    };
  }

  // ---- outage state --------------------------------------------------------------------

  private markDown(e: TaasError): void {
    if (this.closed) return;
    const entriesAgeMs = this.cache.loaded ? Date.now() - this.cache.readAt : null;
    if (!this.outage.start(e, { entries: this.cache.size, entriesAgeMs })) return;
    this.droppedBefore = this.outbox.dropped;
    this.schedule();
  }

  /** The store answered a ping during an outage: re-read entries, write what waited, tell listeners. */
  private async recover(): Promise<void> {
    if (this.recovering || !this.outage.down || this.closed) return;
    this.recovering = true;
    try {
      await this.refresh();
      const failedBefore = this.outbox.failed;
      // Up from here: registrations are taken while the records that waited are written (new
      // ones queue behind them, so the store receives all in order).
      this.outage.end((during) => ({
        recordsQueued: during.queued,
        recordsWaiting: this.outbox.size,
        recordsDropped: this.outbox.dropped - this.droppedBefore,
        entries: this.cache.size,
      }));
      const emptied = await this.outbox.flush(this.inner, isTransient);
      const refused = this.outbox.failed - failedBefore;
      if (refused > 0) this.logger.error({ records: refused, err: oneLine(this.outbox.lastFault) }, 'records refused by the store after its outage; dropped');
      if (!emptied) this.markDown(unavailable());
      // Entries, fixed ports and revocations changed elsewhere during the outage take effect now.
      this.listeners.emit({ type: 'entries' });
    } catch (e) {
      // Still away (or away again): the probe tries again.
      if (!asUnavailable(e)) this.logger.error({ err: oneLine(e) }, 'store recovery failed');
    } finally {
      this.recovering = false;
    }
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.probe(), this.outage.down ? PROBE_DOWN_MS : PROBE_UP_MS);
    this.timer.unref();
  }

  private async probe(): Promise<void> {
    this.timer = null;
    try {
      await pingWithin(this.inner, PROBE_TIMEOUT_MS);
      if (this.outage.down) await this.recover();
      else if (this.outbox.size > 0) void this.flushOutbox();
    } catch (e) {
      this.markDown(asUnavailable(e) ?? unavailable(oneLine(e)));
    }
    this.schedule();
  }

  /** Reads every entry into the cache; the newest read wins when reads overlap. */
  private async refresh(): Promise<void> {
    const seq = ++this.refreshSeq;
    const list = await this.inner.listEntries();
    if (seq < this.appliedSeq) return;
    this.appliedSeq = seq;
    this.cache.replace(list);
  }

  /** A change notification from the store: re-read, then tell this store's own listeners. */
  private async changed(): Promise<void> {
    try {
      await this.refresh();
      if (this.outage.down) void this.recover();
    } catch (e) {
      const u = asUnavailable(e);
      if (u) this.markDown(u);
    }
    this.listeners.emit({ type: 'entries' });
  }

  private async flushOutbox(): Promise<void> {
    if (!(await this.outbox.flush(this.inner, isTransient)) && !this.outage.down) this.markDown(unavailable());
  }

  /** Runs a call that needs the store: refused at once during an outage; a failure starts one. */
  private async call<T>(fn: () => Promise<T>): Promise<T> {
    if (this.outage.down) throw this.outage.refuse();
    try {
      return await fn();
    } catch (e) {
      const u = asUnavailable(e);
      if (!u) throw e;
      this.markDown(u);
      throw u;
    }
  }

  /**
   * A write that must be on disk to count (the replay guard, a lock, a document): the embedded
   * store keeps state in memory and writes it behind, so its ping, which reports the last write
   * failed, tells whether this one is durable.
   */
  private async durable<T>(fn: () => Promise<T>): Promise<T> {
    return this.call(async () => {
      const r = await fn();
      if (this.inner.kind === 'embedded') await this.inner.ping();
      return r;
    });
  }

  /** A read that can be answered from a copy during an outage (or when the store fails under it). */
  private async read<T>(fromStore: () => Promise<T>, fromCopy: () => T | undefined): Promise<T> {
    if (!this.outage.down) {
      try {
        return await fromStore();
      } catch (e) {
        const u = asUnavailable(e);
        if (!u) throw e;
        this.markDown(u);
      }
    }
    const v = fromCopy();
    if (v === undefined) throw this.outage.refuse();
    this.outage.served();
    return v;
  }

  // ---- entries -------------------------------------------------------------------------

  getEntry(id: string): Promise<Entry | null> {
    return this.read(() => this.inner.getEntry(id), () => (this.cache.loaded ? this.cache.get(id) : undefined));
  }

  listEntries(): Promise<Entry[]> {
    return this.read(() => this.inner.listEntries(), () => (this.cache.loaded ? this.cache.list() : undefined));
  }

  entryForLabel(label: string): Promise<Entry | null> {
    return this.read(() => this.inner.entryForLabel(label), () => (this.cache.loaded ? this.cache.forLabel(label) : undefined));
  }

  createEntry(entry: Entry): Promise<Entry> {
    return this.call(() => this.inner.createEntry(entry));
  }

  updateEntry(entry: Entry, expectedVersion?: number): Promise<Entry> {
    return this.call(() => this.inner.updateEntry(entry, expectedVersion));
  }

  deleteEntry(id: string): Promise<boolean> {
    return this.call(() => this.inner.deleteEntry(id));
  }

  // ---- auth state: never from a copy --------------------------------------------------

  claimTotpStep(id: string, step: number, ttlSeconds: number, bucket?: string): Promise<boolean> {
    return this.durable(() => this.inner.claimTotpStep(id, step, ttlSeconds, bucket));
  }

  /** Code reuse counts live in the store only: refused (503) while it is away, like every TOTP check. */
  reuseTotpStep(id: string, step: number, bucket: string, max: number): Promise<boolean> {
    return this.durable(() => this.inner.reuseTotpStep(id, step, bucket, max));
  }

  getAuthState(id: string): Promise<AuthState> {
    return this.call(() => this.inner.getAuthState(id));
  }

  incrFailures(id: string, ttlSeconds: number): Promise<number> {
    return this.call(() => this.inner.incrFailures(id, ttlSeconds));
  }

  setLockedUntil(id: string, untilMs: number, ttlSeconds: number): Promise<void> {
    return this.durable(() => this.inner.setLockedUntil(id, untilMs, ttlSeconds));
  }

  resetFailures(id: string): Promise<void> {
    return this.call(() => this.inner.resetFailures(id));
  }

  incrAddressFailures(address: string, windowSeconds: number): Promise<number> {
    return this.call(() => this.inner.incrAddressFailures(address, windowSeconds));
  }

  // ---- history: written later rather than lost -----------------------------------------

  addPairing(rec: PairingRecord): Promise<void> {
    return this.record({ kind: 'pairing', rec, uncertain: false });
  }

  addAttempt(id: string, rec: AttemptRecord): Promise<void> {
    return this.record({ kind: 'attempt', id, rec, uncertain: false });
  }

  private async record(item: OutboxItem): Promise<void> {
    // Behind records still waiting, never before them: the store receives them in order.
    if (this.outage.down || this.outbox.size > 0) {
      this.queue(item);
      if (!this.outage.down) void this.flushOutbox();
      return;
    }
    try {
      if (item.kind === 'pairing') await this.inner.addPairing(item.rec);
      else await this.inner.addAttempt(item.id, item.rec);
    } catch (e) {
      const u = asUnavailable(e);
      if (!u) throw e;
      this.markDown(u);
      // It may have reached the store before the connection broke: checked before it is written again.
      this.queue({ ...item, uncertain: true });
    }
  }

  private queue(item: OutboxItem): void {
    this.outbox.push(item);
    this.outage.queued();
  }

  listPairings(label: string, limit?: number): Promise<PairingRecord[]> {
    return this.call(() => this.inner.listPairings(label, limit));
  }

  listAttempts(id: string, limit?: number): Promise<AttemptRecord[]> {
    return this.call(() => this.inner.listAttempts(id, limit));
  }

  listDailyCounts(label?: string): Promise<DailyCount[]> {
    return this.call(() => this.inner.listDailyCounts(label));
  }

  // ---- documents: reads from the last copy, writes refused -----------------------------

  getDoc<T = unknown>(ns: string, key: string): Promise<T | null> {
    return this.read(
      async () => {
        const v = await this.inner.getDoc<T>(ns, key);
        this.docs.set(ns, key, v);
        return v;
      },
      () => this.docs.get<T>(ns, key),
    );
  }

  async putDoc(ns: string, key: string, value: unknown, ttlSeconds?: number): Promise<void> {
    await this.durable(() => this.inner.putDoc(ns, key, value, ttlSeconds));
    this.docs.set(ns, key, value ?? null);
  }

  /** A lease between nodes (the ACME order lock): only the store can grant it, so refused (503) during an outage. */
  async claimDoc(ns: string, key: string, value: unknown, ttlSeconds: number): Promise<boolean> {
    const won = await this.durable(() => this.inner.claimDoc(ns, key, value, ttlSeconds));
    if (won) this.docs.set(ns, key, value ?? null);
    return won;
  }

  async deleteDoc(ns: string, key: string): Promise<boolean> {
    const r = await this.durable(() => this.inner.deleteDoc(ns, key));
    this.docs.set(ns, key, null);
    return r;
  }

  listDocs<T = unknown>(ns: string): Promise<{ key: string; value: T }[]> {
    return this.read(
      async () => {
        const list = await this.inner.listDocs<T>(ns);
        this.docs.setList(ns, list);
        return list;
      },
      () => this.docs.list<T>(ns),
    );
  }

  // ---- plumbing ------------------------------------------------------------------------

  watch(listener: (ev: StoreEvent) => void): () => void {
    return this.listeners.add(listener);
  }

  /** Asks the store itself (readiness); an answer during an outage ends it. */
  async ping(): Promise<void> {
    try {
      await pingWithin(this.inner, PROBE_TIMEOUT_MS);
    } catch (e) {
      const u = asUnavailable(e) ?? unavailable('the store does not answer');
      this.markDown(u);
      throw unavailable(this.outage.describe(), u);
    }
    if (this.outage.down) void this.recover();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.outbox.size > 0 && !this.outage.down) await Promise.race([this.outbox.flush(this.inner, isTransient), new Promise((r) => setTimeout(r, CLOSE_FLUSH_MS).unref())]);
    if (this.outbox.size > 0) this.logger.warn({ records: this.outbox.size }, 'records not written to the store: it is unreachable at shutdown');
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.unwatch();
    this.listeners.clear();
    await this.inner.close();
  }
}

/** The store's ping, bounded: a store that holds the call is as good as down. */
async function pingWithin(store: Store, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      store.ping(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(unavailable(`the store did not answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
