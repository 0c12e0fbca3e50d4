/**
 * The Redis store: the relay's shared state for one or many nodes (single server, Sentinel or
 * Cluster; key layout in redis-keys.ts). Secrets are sealed by the SecretBox before they leave
 * the process. Entry changes are announced on a pub/sub channel, read on a second connection,
 * so every node's watch() listeners hear of changes made anywhere.
 *
 * Fails fast (redis-connection.ts): while Redis is unreachable every method throws
 * TAAS_STORE_UNAVAILABLE at once and the store reconnects by itself.
 */
import crypto from 'node:crypto';
import type { Logger } from 'pino';
import type { RedisOptions } from '../config/schema.js';
import { TaasError } from '../errors.js';
import { ATTEMPTS_PER_ID, PAIRINGS_PER_LABEL } from '../protocol/limits.js';
import { checkNewEntry, dayOf, nextVersion, openEntry, type SealedEntry, sealEntry } from './entry-codec.js';
import {
  closeClient,
  COMMAND_TIMEOUT_MS,
  ConnectionHealth,
  type ConnectionSpec,
  connectionSpec,
  createClient,
  type RedisClient,
  settleFirstConnect,
  SUBSCRIBER,
  storeError,
} from './redis-connection.js';
import { RedisKeys } from './redis-keys.js';
import * as S from './redis-scripts.js';
import type { SecretBox } from './secret-box.js';
import type { AttemptRecord, AuthState, DailyCount, Entry, PairingRecord, Store, StoreEvent } from './types.js';
import { StoreListeners } from './listeners.js';

/** Optimistic entry writes give up after this many lost races (entries are rarely written). */
const MAX_ENTRY_RACES = 50;
const withTimeout = <T>(p: Promise<T>, ms: number): Promise<T | undefined> =>
  new Promise((resolve) => {
    const t = setTimeout(() => resolve(undefined), ms);
    void p.then((v) => {
      clearTimeout(t);
      resolve(v);
    });
  });
const ttlMs = (seconds: number): number => Math.max(1, Math.ceil(seconds * 1000));

interface Snapshot {
  gen: number;
  entries: Map<string, Entry>;
}

export class RedisStore implements Store {
  readonly kind = 'redis' as const;
  readonly keys: RedisKeys;
  private readonly listeners: StoreListeners;
  /** Tags this instance's change announcements, so it does not hear its own twice. */
  private readonly instance = crypto.randomUUID();
  private readonly health: ConnectionHealth;
  private closed = false;
  /** Set when connect() returns; later subscriber (re)connections mean "re-read". */
  private opened = false;

  private constructor(
    readonly spec: ConnectionSpec,
    /** Connection for commands (shared with the directory). */
    readonly client: RedisClient,
    /** Connection in subscriber mode (a subscribed connection cannot send commands). */
    private readonly sub: RedisClient,
    private readonly box: SecretBox,
    readonly logger: Logger,
    readonly nodeId: string | undefined,
  ) {
    this.keys = new RedisKeys(spec.prefix);
    this.listeners = new StoreListeners(logger);
    this.health = new ConnectionHealth(client, spec.describe, logger);
    // The subscriber's errors are the same outage the command connection reports: only keep
    // ioredis from throwing them. Whenever it (re)connects after connect() returned (Redis was
    // down at start, or an outage ended), tell listeners to re-read: announcements made while
    // it was away were lost, and a daemon started during an outage has read nothing yet.
    sub.on('error', () => undefined);
    sub.on('ready', () => {
      if (this.opened) this.emit({ type: 'entries' });
    });
    sub.on('message', (channel: string, message: string) => {
      if (channel !== this.keys.events) return;
      try {
        if ((JSON.parse(message) as { src?: string }).src === this.instance) return;
      } catch {
        // A message from a foreign or future writer: still a change.
      }
      this.emit({ type: 'entries' });
    });
  }

  /**
   * Creates the store and starts connecting. Waits for the first connection at most one command
   * timeout, so the daemon starts (and answers 503 where Redis is needed) while Redis is down.
   */
  static async connect(redis: string | RedisOptions, box: SecretBox, logger: Logger, nodeId?: string): Promise<RedisStore> {
    const spec = connectionSpec(redis);
    const client = createClient(spec);
    // The subscriber queues its SUBSCRIBE until connected and re-subscribes after reconnecting.
    const sub = createClient(spec, SUBSCRIBER);
    const store = new RedisStore(spec, client, sub, box, logger, nodeId);
    const subscribed = sub.subscribe(store.keys.events).then(
      () => true,
      () => false,
    );
    // All bounded, and short when Redis is down: when Redis is up, a store returned here is
    // already subscribed, so it misses no change made after it was opened.
    const subReady = settleFirstConnect(sub).then((up) => up && withTimeout(subscribed, COMMAND_TIMEOUT_MS));
    await Promise.all([settleFirstConnect(client), subReady]);
    store.opened = true;
    return store;
  }

  /** Runs commands, turning connection failures into TAAS_STORE_UNAVAILABLE. */
  private async run<T>(fn: (c: RedisClient) => Promise<T>): Promise<T> {
    if (this.closed) throw new TaasError('TAAS_STORE_UNAVAILABLE', 'the store is closed', { retryAfter: 5 });
    try {
      return await fn(this.client);
    } catch (e) {
      const err = storeError(e);
      if (err.code === 'TAAS_INTERNAL') this.logger.error({ err: err.message }, 'Redis store command failed');
      // A server that holds the connection but does not answer (hung, partitioned) would cost
      // every request the full command timeout. Drop the connection instead: until a fresh one
      // is ready, calls fail at once (no offline queue).
      if (/Command timed out/.test((e as Error)?.message ?? '') && this.client.status === 'ready') {
        this.logger.warn({ redis: this.spec.describe }, 'Redis did not answer in time; reconnecting');
        this.client.disconnect(true);
      }
      throw err;
    }
  }

  // ---- entries -------------------------------------------------------------------------

  private open(json: string): Entry {
    return openEntry(JSON.parse(json) as SealedEntry, this.box);
  }

  private async snapshot(): Promise<Snapshot> {
    const [gen, flat] = await this.run((c) => S.READ_ENTRIES.run<[string, string[]]>(c, [this.keys.gen, this.keys.entries], []));
    const entries = new Map<string, Entry>();
    for (let i = 0; i < flat.length; i += 2) entries.set(flat[i]!, this.open(flat[i + 1]!));
    return { gen: Number(gen), entries };
  }

  async getEntry(id: string): Promise<Entry | null> {
    const json = await this.run((c) => c.hget(this.keys.entries, id));
    return json === null ? null : this.open(json);
  }

  async listEntries(): Promise<Entry[]> {
    const { entries } = await this.snapshot();
    return [...entries.values()].sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  async entryForLabel(label: string): Promise<Entry | null> {
    const json = await this.run((c) => S.ENTRY_FOR_LABEL.run<string | null>(c, [this.keys.labels, this.keys.entries], [label]));
    return json ? this.open(json) : null;
  }

  /**
   * Read all entries, decide with the shared rules, write only if nothing changed meanwhile
   * (the generation counter); on a lost race, decide again from a fresh read.
   */
  private async mutate<T>(decide: (snap: Snapshot) => { id: string; next: Entry | null; result: T }): Promise<T> {
    for (let i = 0; i < MAX_ENTRY_RACES; i++) {
      const snap = await this.snapshot();
      const { id, next, result } = decide(snap);
      const oldLabels = snap.entries.get(id)?.labels ?? [];
      const json = next ? JSON.stringify(sealEntry(next, this.box)) : '';
      const args = [snap.gen, id, json, oldLabels.length, ...oldLabels, ...(next?.labels ?? [])];
      const gen = await this.run((c) => S.COMMIT_ENTRY.run<number>(c, [this.keys.gen, this.keys.entries, this.keys.labels], args));
      if (gen !== -1) {
        await this.announce();
        return result;
      }
    }
    throw new TaasError('TAAS_STORE_UNAVAILABLE', 'entries are changing too fast to write; try again', { retryAfter: 1 });
  }

  private async announce(): Promise<void> {
    this.emit({ type: 'entries' });
    // Best effort: the write itself succeeded; a lost announcement is covered by readers
    // re-reading after their own reconnection.
    await this.client.publish(this.keys.events, JSON.stringify({ src: this.instance })).catch(() => undefined);
  }

  async createEntry(entry: Entry): Promise<Entry> {
    return this.mutate(({ entries }) => {
      checkNewEntry(entry, [...entries.values()]);
      const stored = { ...entry, version: 1 };
      return { id: entry.id, next: stored, result: stored };
    });
  }

  async updateEntry(entry: Entry, expectedVersion?: number): Promise<Entry> {
    return this.mutate(({ entries }) => {
      const cur = entries.get(entry.id);
      if (!cur) throw new TaasError('TAAS_ENTRY_NOT_FOUND', `no entry with ID ${entry.id}`);
      const updated = nextVersion(cur, entry, expectedVersion, [...entries.values()]);
      return { id: entry.id, next: updated, result: updated };
    });
  }

  async deleteEntry(id: string): Promise<boolean> {
    // Checked first so deleting a missing entry neither writes nor announces.
    if ((await this.run((c) => c.hexists(this.keys.entries, id))) === 0) return false;
    return this.mutate(({ entries }) => ({ id, next: null, result: entries.has(id) }));
  }

  // ---- auth state (shared by all nodes: a code used at one node is refused at the others) --

  async claimTotpStep(id: string, step: number, ttlSeconds: number, bucket?: string): Promise<boolean> {
    // The value names the bucket that used the step (reuseTotpStep compares it); '1' (no bucket) matches none.
    const r = await this.run((c) => c.set(this.keys.step(id, step), bucket === undefined ? '1' : `b:${bucket}`, 'PX', ttlMs(ttlSeconds), 'NX'));
    return r === 'OK';
  }

  async reuseTotpStep(id: string, step: number, bucket: string, max: number): Promise<boolean> {
    const keys = [this.keys.step(id, step), this.keys.stepReuses(id, step)];
    return Number(await this.run((c) => S.REUSE_STEP.run(c, keys, [`b:${bucket}`, max]))) === 1;
  }

  async getAuthState(id: string): Promise<AuthState> {
    const [f, l] = await this.run((c) => c.hmget(this.keys.auth(id), 'failures', 'lockedUntil'));
    return { failures: Number(f ?? 0), lockedUntil: Number(l ?? 0) };
  }

  async incrFailures(id: string, ttlSeconds: number): Promise<number> {
    return Number(await this.run((c) => S.HINCR_TTL.run(c, [this.keys.auth(id)], ['failures', ttlMs(ttlSeconds)])));
  }

  async setLockedUntil(id: string, untilMs: number, ttlSeconds: number): Promise<void> {
    await this.run((c) => S.HSET_TTL.run(c, [this.keys.auth(id)], ['lockedUntil', Math.round(untilMs), ttlMs(ttlSeconds)]));
  }

  async resetFailures(id: string): Promise<void> {
    await this.run((c) => c.del(this.keys.auth(id)));
  }

  async incrAddressFailures(address: string, windowSeconds: number): Promise<number> {
    const len = ttlMs(windowSeconds);
    const window = Math.floor(Date.now() / len);
    return Number(await this.run((c) => S.INCR_WINDOW.run(c, [this.keys.addressWindow(address, window)], [len])));
  }

  // ---- history -------------------------------------------------------------------------

  async addPairing(rec: PairingRecord): Promise<void> {
    const keys = [this.keys.pairings(rec.label), this.keys.daily(rec.label)];
    const bytes = Math.max(0, Math.round(rec.bytesUp + rec.bytesDown));
    await this.run((c) => S.ADD_PAIRING.run(c, keys, [JSON.stringify(rec), PAIRINGS_PER_LABEL, dayOf(rec.end), bytes]));
    // Another slot than the label's: a separate command (the index only ever grows by labels).
    await this.run((c) => c.sadd(this.keys.dailyLabels, rec.label));
  }

  async listPairings(label: string, limit = PAIRINGS_PER_LABEL): Promise<PairingRecord[]> {
    if (limit <= 0) return [];
    const list = await this.run((c) => c.lrange(this.keys.pairings(label), 0, Math.min(limit, PAIRINGS_PER_LABEL) - 1));
    return list.map((s) => JSON.parse(s) as PairingRecord);
  }

  async addAttempt(id: string, rec: AttemptRecord): Promise<void> {
    await this.run((c) => S.PUSH_CAPPED.run(c, [this.keys.attempts(id)], [JSON.stringify(rec), ATTEMPTS_PER_ID]));
  }

  async listAttempts(id: string, limit = ATTEMPTS_PER_ID): Promise<AttemptRecord[]> {
    if (limit <= 0) return [];
    const list = await this.run((c) => c.lrange(this.keys.attempts(id), 0, Math.min(limit, ATTEMPTS_PER_ID) - 1));
    return list.map((s) => JSON.parse(s) as AttemptRecord);
  }

  async listDailyCounts(label?: string): Promise<DailyCount[]> {
    const labels = label !== undefined ? [label] : await this.run((c) => c.smembers(this.keys.dailyLabels));
    const hashes = await Promise.all(labels.map((l) => this.run((c) => c.hgetall(this.keys.daily(l)))));
    const out: DailyCount[] = [];
    labels.forEach((l, i) => {
      const h = hashes[i]!;
      for (const field of Object.keys(h)) {
        if (!field.endsWith(':p')) continue;
        const day = field.slice(0, -2);
        out.push({ label: l, day, pairings: Number(h[field]), bytes: Number(h[`${day}:b`] ?? 0) });
      }
    });
    return out.sort((a, b) => (a.day === b.day ? a.label.localeCompare(b.label) : b.day.localeCompare(a.day)));
  }

  // ---- documents -----------------------------------------------------------------------

  async getDoc<T = unknown>(ns: string, key: string): Promise<T | null> {
    const json = await this.run((c) => c.get(this.keys.doc(ns, key)));
    return json === null ? null : (JSON.parse(json) as T);
  }

  async putDoc(ns: string, key: string, value: unknown, ttlSeconds?: number): Promise<void> {
    const json = JSON.stringify(value ?? null);
    const ttl = ttlSeconds ? ttlMs(ttlSeconds) : 0;
    await this.run((c) => S.PUT_DOC.run(c, [this.keys.doc(ns, key), this.keys.docIndex(ns)], [key, json, ttl]));
  }

  async claimDoc(ns: string, key: string, value: unknown, ttlSeconds: number): Promise<boolean> {
    const json = JSON.stringify(value ?? null);
    return (await this.run((c) => S.CLAIM_DOC.run<number>(c, [this.keys.doc(ns, key), this.keys.docIndex(ns)], [key, json, ttlMs(ttlSeconds)]))) === 1;
  }

  async deleteDoc(ns: string, key: string): Promise<boolean> {
    return (await this.run((c) => S.DELETE_DOC.run<number>(c, [this.keys.doc(ns, key), this.keys.docIndex(ns)], [key]))) > 0;
  }

  async listDocs<T = unknown>(ns: string): Promise<{ key: string; value: T }[]> {
    const keys = await this.run((c) => c.smembers(this.keys.docIndex(ns)));
    if (keys.length === 0) return [];
    const values = await this.run((c) => c.mget(...keys.map((k) => this.keys.doc(ns, k))));
    const out: { key: string; value: T }[] = [];
    const expired: string[] = [];
    keys.forEach((key, i) => {
      const v = values[i];
      if (v === null || v === undefined) expired.push(key);
      else out.push({ key, value: JSON.parse(v) as T });
    });
    // Documents that expired leave their name in the index; drop them lazily.
    if (expired.length) await this.run((c) => c.srem(this.keys.docIndex(ns), ...expired)).catch(() => undefined);
    return out.sort((a, b) => a.key.localeCompare(b.key));
  }

  // ---- plumbing ------------------------------------------------------------------------

  watch(listener: (ev: StoreEvent) => void): () => void {
    return this.listeners.add(listener);
  }

  private emit(ev: StoreEvent): void {
    this.listeners.emit(ev);
  }

  /** True while the command connection is up (for health reports; ping() is the real test). */
  get connected(): boolean {
    return this.health.up;
  }

  async ping(): Promise<void> {
    await this.run((c) => c.ping());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    await Promise.all([closeClient(this.sub), closeClient(this.client)]);
  }
}
