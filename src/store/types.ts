/**
 * The Store interface: everything the relay keeps beyond one process's life, and everything
 * several nodes must share. Two implementations: embedded (files in the data dir) and Redis.
 * Both pass test/store/contract.ts. Secrets are plaintext only in memory: implementations
 * persist them through the SecretBox (src/store/secret-box.ts).
 */

import type { LabelPolicy } from '../protocol/policy.js';

export interface Entry {
  /** Administratively assigned ID (a UUID unless the operator chose one). */
  id: string;
  /** Base32 TOTP secret (plaintext in memory only). */
  secret: string;
  /** Labels granted to this ID, lowercased DNS labels, each owned by one entry only. */
  labels: string[];
  /** Fixed client ports: label → port, for clients that cannot follow a redirect. */
  clientPorts: Record<string, number>;
  /**
   * Traffic policies: label → policy (src/protocol/policy.ts), validated when written. A label
   * without one gets the config's defaultPolicy. Absent in entries written before issue 18.
   */
  policies?: Record<string, LabelPolicy>;
  /**
   * How mobile clients reach a label (label → mode; a label not named is `redirect`): `redirect`
   * answers a 307 to a client port; `passthrough` (with `sharedPort`) routes a ClientHello whose
   * SNI is LABEL.<namedServers> straight to a responder, TLS end to end, no 307.
   */
  clientMode?: Record<string, ClientMode>;
  createdAt: string;
  updatedAt: string;
  /** Incremented on every write; the admin API's ETag. */
  version: number;
}

export type ClientMode = 'redirect' | 'passthrough';
export const CLIENT_MODES: readonly ClientMode[] = ['redirect', 'passthrough'];

/** A label's client mode in its entry (`redirect` unless the entry says otherwise). */
export function clientModeOf(e: Pick<Entry, 'clientMode'>, label: string): ClientMode {
  return e.clientMode && Object.hasOwn(e.clientMode, label) && e.clientMode[label] === 'passthrough' ? 'passthrough' : 'redirect';
}

/** One pairing of a mobile client with a responder, recorded when it ends. */
export interface PairingRecord {
  label: string;
  /** `addr:port` of the hidden server's connection. */
  responder: string;
  /** `addr:port` of the mobile client's connection. */
  client: string;
  /** Path and query of the request that got the 307, when known. */
  path: string | null;
  start: string;
  end: string;
  /** Octets client → responder and responder → client. */
  bytesUp: number;
  bytesDown: number;
  /** Why it ended: eof, reset, error, idle, closed, drain. */
  reason: string;
  node?: string;
}

/** One registration attempt, for the operator's view of an ID. */
export interface AttemptRecord {
  at: string;
  from: string;
  label: string;
  /** ok, bad-code, replay, locked, not-granted, no-port, ... */
  result: string;
}

export interface AuthState {
  /** Failed attempts in a row. */
  failures: number;
  /** Epoch ms until which the ID is locked out (0: not locked). */
  lockedUntil: number;
}

export interface DailyCount {
  label: string;
  day: string;
  pairings: number;
  bytes: number;
}

export type StoreEvent = { type: 'entries' };

export interface Store {
  readonly kind: 'embedded' | 'redis';

  getEntry(id: string): Promise<Entry | null>;
  listEntries(): Promise<Entry[]>;
  entryForLabel(label: string): Promise<Entry | null>;
  /** Throws TAAS_ENTRY_EXISTS or TAAS_LABEL_TAKEN. */
  createEntry(entry: Entry): Promise<Entry>;
  /**
   * Replaces an entry; when `expectedVersion` is given and differs, throws
   * TAAS_PRECONDITION_FAILED (412). Bumps version and updatedAt.
   */
  updateEntry(entry: Entry, expectedVersion?: number): Promise<Entry>;
  deleteEntry(id: string): Promise<boolean>;

  /**
   * Replay guard: true when (id, step) had not been used; marks it used for ttlSeconds and
   * remembers `bucket`, the address bucket that used it (for reuseTotpStep).
   */
  claimTotpStep(id: string, step: number, ttlSeconds: number, bucket?: string): Promise<boolean>;
  /**
   * Code reuse by an original-protocol hidden server building its pool: true when (id, step)
   * was claimed from `bucket` and has been reused fewer than `max` times; counts this reuse.
   * Atomic in either store, so across nodes at most `max` reuses of a step succeed.
   */
  reuseTotpStep(id: string, step: number, bucket: string, max: number): Promise<boolean>;
  getAuthState(id: string): Promise<AuthState>;
  /** Adds one failure in a row; returns the new count. */
  incrFailures(id: string, ttlSeconds: number): Promise<number>;
  setLockedUntil(id: string, untilMs: number, ttlSeconds: number): Promise<void>;
  resetFailures(id: string): Promise<void>;
  /** Counts one failure from an address in the current window; returns the window's count. */
  incrAddressFailures(address: string, windowSeconds: number): Promise<number>;

  addPairing(rec: PairingRecord): Promise<void>;
  /** Most recent first. */
  listPairings(label: string, limit?: number): Promise<PairingRecord[]>;
  addAttempt(id: string, rec: AttemptRecord): Promise<void>;
  listAttempts(id: string, limit?: number): Promise<AttemptRecord[]>;
  listDailyCounts(label?: string): Promise<DailyCount[]>;

  /**
   * Small JSON documents by namespace, for the admin plane (API keys, refresh tokens, access
   * log). Namespaces are fixed names ('apikeys', 'refresh', ...); keys are opaque strings.
   * `ttlSeconds` (optional) expires a document. Shared between nodes with the Redis store.
   */
  getDoc<T = unknown>(ns: string, key: string): Promise<T | null>;
  putDoc(ns: string, key: string, value: unknown, ttlSeconds?: number): Promise<void>;
  deleteDoc(ns: string, key: string): Promise<boolean>;
  /**
   * Writes the document only when none exists (or it expired), atomically: true when written.
   * A lease between nodes (the ACME order lock); `ttlSeconds` bounds how long a crashed
   * holder keeps it.
   */
  claimDoc(ns: string, key: string, value: unknown, ttlSeconds: number): Promise<boolean>;
  listDocs<T = unknown>(ns: string): Promise<{ key: string; value: T }[]>;

  /** Called when entries change, from this process or another (CLI, other node). */
  watch(listener: (ev: StoreEvent) => void): () => void;
  /** Resolves when the store answers; throws TAAS_STORE_UNAVAILABLE otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
