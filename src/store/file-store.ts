/**
 * The embedded store: files in the data dir, for one node. No Redis, no other process.
 *
 * - entries.json holds the entries (secrets sealed by the SecretBox). Every change is a
 *   crash-safe write under a lock file, so the CLI and a running daemon may both change it;
 *   the daemon notices changes made by others by watching the file.
 * - state.json holds pairings, attempts, daily counts, admin documents and the auth state
 *   (replay guard, failures). It is written atomically a moment after changes (batched so a
 *   busy relay does not fsync per pairing); auth state and documents are written at once.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { TaasError } from '../errors.js';
import { ATTEMPTS_PER_ID, PAIRINGS_PER_LABEL } from '../protocol/limits.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { withFileLock } from '../util/file-lock.js';
import type { SecretBox } from './secret-box.js';
import type { AttemptRecord, AuthState, DailyCount, Entry, PairingRecord, Store, StoreEvent } from './types.js';
import { checkNewEntry, dayOf, nextVersion, type SealedEntry, sealEntry, openEntry } from './entry-codec.js';
import { StoreListeners } from './listeners.js';

interface StateFile {
  pairings: Record<string, PairingRecord[]>;
  attempts: Record<string, AttemptRecord[]>;
  daily: Record<string, DailyCount>;
  docs: Record<string, Record<string, { value: unknown; exp: number }>>;
  /** Used TOTP steps per ID: the bucket that used it first, the reuses counted since. */
  steps: Record<string, { step: number; exp: number; bucket?: string; reuses?: number }[]>;
  auth: Record<string, AuthState & { exp: number }>;
}

/**
 * Every map in the state is keyed by IDs, labels or addresses that come from requests; without
 * a prototype, an ID or label such as `constructor` or `toString` finds nothing it did not put
 * there (with `{}` it found Object's members: never locked out, history lost).
 */
const dict = <T>(from?: Record<string, T>): Record<string, T> => Object.assign(Object.create(null) as Record<string, T>, from ?? {});
const emptyState = (): StateFile => ({ pairings: dict(), attempts: dict(), daily: dict(), docs: dict(), steps: dict(), auth: dict() });
/**
 * Failure records kept for IDs that are not entries. They exist so that unknown IDs are locked
 * out like known ones; beyond this many (a spray of made-up IDs) the oldest are dropped. Known
 * IDs' records are never dropped to make room: a spray cannot lift a real lock.
 */
export const MAX_UNKNOWN_AUTH_RECORDS = 10_000;
/** Batching delay for state.json writes: pairings are history, a second of it may be lost in a crash. */
const FLUSH_DELAY_MS = 500;
/** Entries are re-read on a timer too: fs.watch misses events on some file systems. */
const POLL_MS = 1000;

export class FileStore implements Store {
  readonly kind = 'embedded' as const;
  private entries = new Map<string, Entry>();
  private byLabel = new Map<string, string>();
  private state: StateFile = emptyState();
  private addressFailures = new Map<string, { window: number; count: number }>();
  /** Failure records of unknown IDs: counted at open and on each new failure, recounted by each prune. */
  private unknownAuth = 0;
  private readonly listeners: StoreListeners;
  private flushTimer: NodeJS.Timeout | null = null;
  private watcher: fs.FSWatcher | null = null;
  private poller: NodeJS.Timeout | null = null;
  private lastMtime = 0;
  private closed = false;
  private readOnlyState = false;
  /**
   * Why the last write of state.json failed (disk full, read-only file system), or null. Kept
   * in memory meanwhile; ping() retries the write and reports the store unavailable until it
   * succeeds, so the daemon degrades as on a Redis outage (src/store/resilient-store.ts).
   */
  private writeError: string | null = null;

  private constructor(
    readonly dataDir: string,
    private readonly box: SecretBox,
    private readonly logger?: Logger,
  ) {
    this.listeners = new StoreListeners(logger);
  }

  private get entriesFile(): string {
    return path.join(this.dataDir, 'entries.json');
  }
  private get stateFile(): string {
    return path.join(this.dataDir, 'state.json');
  }

  /** Opens (creating) the store in `dataDir`. `watch` follows changes made by other processes. */
  static async open(dataDir: string, box: SecretBox, logger?: Logger, opts: { watch?: boolean; readOnlyState?: boolean } = {}): Promise<FileStore> {
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const s = new FileStore(dataDir, box, logger);
    // A CLI command beside a running daemon reads history but must not overwrite the daemon's.
    s.readOnlyState = opts.readOnlyState === true;
    s.loadEntries();
    s.loadState();
    s.unknownAuth = Object.keys(s.state.auth).filter((k) => !s.entries.has(k)).length;
    if (opts.watch !== false) s.startWatching();
    return s;
  }

  // ---- entries -------------------------------------------------------------------------

  private readEntriesFile(): SealedEntry[] {
    if (!fs.existsSync(this.entriesFile)) return [];
    try {
      const parsed = JSON.parse(fs.readFileSync(this.entriesFile, 'utf8'));
      return Array.isArray(parsed?.entries) ? parsed.entries : [];
    } catch (e) {
      throw new TaasError('TAAS_FILE_UNREADABLE', `entries file ${this.entriesFile}: ${(e as Error).message}`);
    }
  }

  private loadEntries(): boolean {
    const sealed = this.readEntriesFile();
    try {
      this.lastMtime = fs.existsSync(this.entriesFile) ? fs.statSync(this.entriesFile).mtimeMs : 0;
    } catch {
      this.lastMtime = 0;
    }
    const next = new Map(sealed.map((s) => [s.id, openEntry(s, this.box)] as const));
    const changed = JSON.stringify([...next.values()]) !== JSON.stringify([...this.entries.values()]);
    this.entries = next;
    this.byLabel = new Map();
    for (const e of next.values()) for (const l of e.labels) this.byLabel.set(l, e.id);
    return changed;
  }

  /** Read-modify-write of entries.json under the lock, from the file's current content. */
  private async mutateEntries<T>(fn: (entries: Map<string, Entry>) => T): Promise<T> {
    const result = await withFileLock(this.entriesFile + '.lock', () => {
      this.loadEntries();
      const r = fn(this.entries);
      const body = { version: 1, entries: [...this.entries.values()].map((e) => sealEntry(e, this.box)) };
      writeFileAtomic(this.entriesFile, JSON.stringify(body, null, 2) + '\n');
      return r;
    });
    this.loadEntries();
    this.emit({ type: 'entries' });
    return result;
  }

  async getEntry(id: string): Promise<Entry | null> {
    return this.entries.get(id) ?? null;
  }
  async listEntries(): Promise<Entry[]> {
    return [...this.entries.values()].sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }
  async entryForLabel(label: string): Promise<Entry | null> {
    const id = this.byLabel.get(label);
    return id === undefined ? null : (this.entries.get(id) ?? null);
  }

  async createEntry(entry: Entry): Promise<Entry> {
    return this.mutateEntries((all) => {
      checkNewEntry(entry, [...all.values()]);
      const stored = { ...entry, version: 1 };
      all.set(entry.id, stored);
      return stored;
    });
  }

  async updateEntry(entry: Entry, expectedVersion?: number): Promise<Entry> {
    return this.mutateEntries((all) => {
      const cur = all.get(entry.id);
      if (!cur) throw new TaasError('TAAS_ENTRY_NOT_FOUND', `no entry with ID ${entry.id}`);
      const updated = nextVersion(cur, entry, expectedVersion, [...all.values()]);
      all.set(entry.id, updated);
      return updated;
    });
  }

  async deleteEntry(id: string): Promise<boolean> {
    return this.mutateEntries((all) => all.delete(id));
  }

  // ---- auth state ----------------------------------------------------------------------

  async claimTotpStep(id: string, step: number, ttlSeconds: number, bucket?: string): Promise<boolean> {
    const now = Date.now();
    const list = (this.state.steps[id] ?? []).filter((s) => s.exp > now);
    if (list.some((s) => s.step === step)) return false;
    list.push({ step, exp: now + ttlSeconds * 1000, ...(bucket !== undefined ? { bucket } : {}) });
    this.state.steps[id] = list;
    this.flushNow();
    return true;
  }

  async reuseTotpStep(id: string, step: number, bucket: string, max: number): Promise<boolean> {
    const used = (this.state.steps[id] ?? []).find((s) => s.step === step && s.exp > Date.now());
    if (!used || used.bucket !== bucket || (used.reuses ?? 0) >= max) return false;
    used.reuses = (used.reuses ?? 0) + 1;
    // Memory is authoritative in this one process; a crash loses at most a few counts of a
    // step that ends within seconds anyway.
    this.flushSoon();
    return true;
  }

  async getAuthState(id: string): Promise<AuthState> {
    const a = this.state.auth[id];
    if (!a || a.exp < Date.now()) return { failures: 0, lockedUntil: 0 };
    return { failures: a.failures, lockedUntil: a.lockedUntil };
  }

  async incrFailures(id: string, ttlSeconds: number): Promise<number> {
    const cur = await this.getAuthState(id);
    // Re-inserted so that the object's key order is the order of last use (oldest first).
    delete this.state.auth[id];
    this.state.auth[id] = { ...cur, failures: cur.failures + 1, exp: Date.now() + ttlSeconds * 1000 };
    if (!this.entries.has(id) && ++this.unknownAuth > MAX_UNKNOWN_AUTH_RECORDS) this.pruneUnknownAuth();
    // Memory is authoritative in this one process; every attempt is counted (the authenticator
    // counts before it checks), so an fsync each would cost more than the count is worth.
    // A lock, once set, is written at once (setLockedUntil).
    this.flushSoon();
    return cur.failures + 1;
  }

  /** Drops expired records, then the least recently failed unknown IDs down to half the cap. */
  private pruneUnknownAuth(): void {
    const now = Date.now();
    const unknown: string[] = [];
    for (const [k, v] of Object.entries(this.state.auth)) {
      if (v.exp < now) delete this.state.auth[k];
      else if (!this.entries.has(k)) unknown.push(k);
    }
    const drop = unknown.length > MAX_UNKNOWN_AUTH_RECORDS / 2 ? unknown.length - MAX_UNKNOWN_AUTH_RECORDS / 2 : 0;
    for (const k of unknown.slice(0, drop)) delete this.state.auth[k];
    this.unknownAuth = unknown.length - drop;
  }

  async setLockedUntil(id: string, untilMs: number, ttlSeconds: number): Promise<void> {
    const cur = await this.getAuthState(id);
    this.state.auth[id] = { ...cur, lockedUntil: untilMs, exp: Date.now() + ttlSeconds * 1000 };
    this.flushNow();
  }

  async resetFailures(id: string): Promise<void> {
    if (this.state.auth[id]) {
      delete this.state.auth[id];
      this.flushSoon();
    }
  }

  async incrAddressFailures(address: string, windowSeconds: number): Promise<number> {
    const window = Math.floor(Date.now() / (windowSeconds * 1000));
    const cur = this.addressFailures.get(address);
    const next = cur && cur.window === window ? { window, count: cur.count + 1 } : { window, count: 1 };
    this.addressFailures.set(address, next);
    if (this.addressFailures.size > 100_000) this.pruneAddressFailures(window);
    return next.count;
  }

  private pruneAddressFailures(window: number): void {
    for (const [k, v] of this.addressFailures) if (v.window !== window) this.addressFailures.delete(k);
  }

  // ---- history -------------------------------------------------------------------------

  async addPairing(rec: PairingRecord): Promise<void> {
    const list = (this.state.pairings[rec.label] ??= []);
    list.unshift(rec);
    if (list.length > PAIRINGS_PER_LABEL) list.length = PAIRINGS_PER_LABEL;
    const key = `${rec.label}|${dayOf(rec.end)}`;
    const d = (this.state.daily[key] ??= { label: rec.label, day: dayOf(rec.end), pairings: 0, bytes: 0 });
    d.pairings += 1;
    d.bytes += rec.bytesUp + rec.bytesDown;
    this.flushSoon();
  }

  async listPairings(label: string, limit = PAIRINGS_PER_LABEL): Promise<PairingRecord[]> {
    return (this.state.pairings[label] ?? []).slice(0, limit);
  }

  async addAttempt(id: string, rec: AttemptRecord): Promise<void> {
    const list = (this.state.attempts[id] ??= []);
    list.unshift(rec);
    if (list.length > ATTEMPTS_PER_ID) list.length = ATTEMPTS_PER_ID;
    this.flushSoon();
  }

  async listAttempts(id: string, limit = ATTEMPTS_PER_ID): Promise<AttemptRecord[]> {
    return (this.state.attempts[id] ?? []).slice(0, limit);
  }

  async listDailyCounts(label?: string): Promise<DailyCount[]> {
    return Object.values(this.state.daily)
      .filter((d) => label === undefined || d.label === label)
      .sort((a, b) => (a.day === b.day ? a.label.localeCompare(b.label) : b.day.localeCompare(a.day)));
  }

  // ---- documents -----------------------------------------------------------------------

  async getDoc<T = unknown>(ns: string, key: string): Promise<T | null> {
    const d = this.state.docs[ns]?.[key];
    if (!d || (d.exp && d.exp < Date.now())) return null;
    return structuredClone(d.value) as T;
  }

  async putDoc(ns: string, key: string, value: unknown, ttlSeconds?: number): Promise<void> {
    const docs = (this.state.docs[ns] ??= Object.create(null) as Record<string, { value: unknown; exp: number }>);
    docs[key] = { value: structuredClone(value), exp: ttlSeconds ? Date.now() + ttlSeconds * 1000 : 0 };
    this.flushNow();
  }

  async claimDoc(ns: string, key: string, value: unknown, ttlSeconds: number): Promise<boolean> {
    // One process owns the embedded store, and the look and the write are one synchronous
    // step: no other claim can run in between.
    const d = this.state.docs[ns]?.[key];
    if (d && (!d.exp || d.exp >= Date.now())) return false;
    const docs = (this.state.docs[ns] ??= Object.create(null) as Record<string, { value: unknown; exp: number }>);
    docs[key] = { value: structuredClone(value), exp: Date.now() + ttlSeconds * 1000 };
    this.flushNow();
    return true;
  }

  async deleteDoc(ns: string, key: string): Promise<boolean> {
    const docs = this.state.docs[ns];
    if (!docs || !Object.hasOwn(docs, key)) return false;
    delete docs[key];
    this.flushNow();
    return true;
  }

  async listDocs<T = unknown>(ns: string): Promise<{ key: string; value: T }[]> {
    const now = Date.now();
    return Object.entries(this.state.docs[ns] ?? {})
      .filter(([, d]) => !d.exp || d.exp >= now)
      .map(([key, d]) => ({ key, value: structuredClone(d.value) as T }));
  }

  // ---- plumbing ------------------------------------------------------------------------

  watch(listener: (ev: StoreEvent) => void): () => void {
    return this.listeners.add(listener);
  }

  private emit(ev: StoreEvent): void {
    this.listeners.emit(ev);
  }

  private startWatching(): void {
    const check = () => {
      if (this.closed) return;
      try {
        const m = fs.existsSync(this.entriesFile) ? fs.statSync(this.entriesFile).mtimeMs : 0;
        if (m !== this.lastMtime && this.loadEntries()) this.emit({ type: 'entries' });
      } catch (e) {
        this.logger?.warn({ err: (e as Error).message }, 'entries file could not be re-read; keeping the last good copy');
      }
    };
    try {
      this.watcher = fs.watch(this.dataDir, (_ev, name) => {
        if (name === 'entries.json') check();
      });
      this.watcher.on('error', () => undefined);
    } catch {
      this.watcher = null;
    }
    this.poller = setInterval(check, POLL_MS);
    this.poller.unref();
  }

  async ping(): Promise<void> {
    if (this.writeError !== null) this.flushNow();
    const why = this.writeError ?? (fs.existsSync(this.dataDir) ? null : 'the data dir is gone');
    if (why !== null) throw new TaasError('TAAS_STORE_UNAVAILABLE', 'the data dir cannot be written right now', { retryAfter: 2, cause: new Error(why) });
    try {
      fs.accessSync(this.dataDir, fs.constants.W_OK);
    } catch (e) {
      throw new TaasError('TAAS_STORE_UNAVAILABLE', 'the data dir cannot be written right now', { retryAfter: 2, cause: e });
    }
  }

  private loadState(): void {
    if (!fs.existsSync(this.stateFile)) return;
    try {
      const raw = JSON.parse(fs.readFileSync(this.stateFile, 'utf8')) as Partial<StateFile>;
      const docs = dict<Record<string, { value: unknown; exp: number }>>();
      for (const [ns, d] of Object.entries(raw.docs ?? {})) docs[ns] = dict(d);
      this.state = { pairings: dict(raw.pairings), attempts: dict(raw.attempts), daily: dict(raw.daily), docs, steps: dict(raw.steps), auth: dict(raw.auth) };
    } catch (e) {
      this.logger?.warn({ err: (e as Error).message }, 'state.json unreadable; starting with empty history');
      this.state = emptyState();
    }
  }

  private flushSoon(): void {
    if (this.flushTimer || this.closed) return;
    this.flushTimer = setTimeout(() => this.flushNow(), FLUSH_DELAY_MS);
    this.flushTimer.unref();
  }

  private flushNow(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    if (this.readOnlyState) return;
    try {
      writeFileAtomic(this.stateFile, JSON.stringify(this.state));
      this.writeError = null;
    } catch (e) {
      // Logged once per failing stretch (the outage's start and end are logged by the daemon's
      // store wrapper): a full disk must not also fill the log, every 500 ms.
      if (this.writeError === null) this.logger?.error({ err: (e as Error).message }, 'state.json could not be written; kept in memory until it can');
      this.writeError = (e as Error).message;
      this.removeTemp();
    }
  }

  /** A failed write may leave its temporary file behind (a full disk): it would only take more room. */
  private removeTemp(): void {
    try {
      for (const f of fs.readdirSync(this.dataDir)) if (f.startsWith(`.state.json.${process.pid}.`) && f.endsWith('.tmp')) fs.rmSync(path.join(this.dataDir, f), { force: true });
    } catch {
      /* the folder itself is unreadable: nothing to tidy */
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.flushNow();
    this.closed = true;
    this.watcher?.close();
    if (this.poller) clearInterval(this.poller);
    this.listeners.clear();
  }
}
