/**
 * What the entry commands act through: the running daemon's admin API when one answers on this
 * data dir (its rules apply and it sees the change at once), else the store directly (the
 * daemon, if it starts later or runs elsewhere on the same store, sees it through the store).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/schema.js';
import { fixedConfig } from '../config/view.js';
import { createLogger } from '../observe/logger.js';
import { RelayTls } from '../tls/relay-tls.js';
import { FileStore } from '../store/file-store.js';
import { openSecretBox, openStore, secretKeyFile } from '../store/open.js';
import { checkSecretKey, openWithKey } from '../store/key-check.js';
import { SecretBox } from '../store/secret-box.js';
import { isTaasError, oneLine } from '../errors.js';
import { EntryService, type EntryInput } from '../entries/entry-service.js';
import type { Entry, PairingRecord, Store } from '../store/types.js';
import type { AgentFile } from '../protocol/agent-file.js';
import type { LabelPolicy } from '../protocol/policy.js';
import { TaasError } from '../errors.js';
import { readRuntime } from '../observe/runtime-file.js';
import { nodeHost } from '../protocol/endpoint.js';
import { adminClient } from '../admin/client.js';

export type EntryView = Omit<Entry, 'secret'>;

export interface Operator {
  readonly via: 'admin API' | 'store';
  create(input: EntryInput): Promise<{ entry: EntryView; otpauthUri: string; agentFile: AgentFile }>;
  list(): Promise<EntryView[]>;
  remove(id: string): Promise<boolean>;
  addLabel(id: string, label: string): Promise<EntryView>;
  pairings(label: string): Promise<PairingRecord[]>;
  /** The entry holding `label` (TAAS_NOT_FOUND when none does). */
  entryOfLabel(label: string): Promise<EntryView>;
  /** Sets (null: removes) the label's traffic policy. */
  setPolicy(label: string, policy: LabelPolicy | null): Promise<EntryView>;
}

/** A store for one command: the embedded one without watching, and without writing history. */
export async function withStore<T>(c: Readonly<Config>, fn: (store: Store, entries: EntryService) => Promise<T>): Promise<T> {
  const silent = createLogger({ level: 'error', pretty: false, destination: process.stderr as never });
  const box = openSecretBox(c);
  const store = await openWithKey(() => (c.redis ? openStore(c, box, silent) : FileStore.open(path.resolve(c.dataDir), box, silent, { watch: false, readOnlyState: true })), box, secretKeyFile(c));
  try {
    // A command run with another node's key file would seal secrets no other node can open.
    await checkSecretKey(store, box, secretKeyFile(c), { write: false });
  } catch (e) {
    await store.close();
    throw e;
  }
  const running = readRuntime(c.dataDir);
  const tls = RelayTls.load(c, { generate: c.generateCert });
  const entries = new EntryService(store, {
    config: fixedConfig(c),
    tls: () => tls,
    registrarEndpoint: () => ({ host: nodeHost(c), port: running?.registrar.port ?? c.taasPort }),
  });
  try {
    return await fn(store, entries);
  } finally {
    await store.close();
  }
}

export async function withOperator<T>(c: Readonly<Config>, fn: (op: Operator) => Promise<T>): Promise<T> {
  const api = readRuntime(c.dataDir) ? await adminClient(c.dataDir, c) : null;
  if (api) {
    return fn({
      via: 'admin API',
      create: (input) => api.createEntry(input),
      list: () => api.listEntries(),
      remove: (id) => api.removeEntry(id),
      addLabel: (id, label) => api.addLabel(id, label),
      pairings: (label) => api.pairings(label),
      entryOfLabel: async (label) => {
        const e = (await api.listEntries()).find((x) => x.labels.includes(label));
        if (!e) throw new TaasError('TAAS_NOT_FOUND', `no entry has label ${label}`);
        return e;
      },
      setPolicy: (label, policy) => api.setPolicy(label, policy),
    });
  }
  return withStore(c, (store, svc) =>
    fn({
      via: 'store',
      create: (input) => svc.create(input),
      list: () => store.listEntries(),
      remove: (id) => svc.remove(id),
      addLabel: (id, label) => svc.addLabel(id, label),
      pairings: (label) => store.listPairings(label),
      entryOfLabel: (label) => svc.ofLabel(label),
      setPolicy: (label, policy) => svc.setPolicy(label, policy),
    }),
  );
}

/**
 * `config check`'s test of the secret key file against the store, creating nothing: throws
 * TAAS_SECRET_KEY_MISMATCH as the daemon's start would; returns a note when it could not look
 * (no store yet, or the store unreachable), else null.
 */
export async function checkKeyFile(c: Readonly<Config>): Promise<string | null> {
  const file = secretKeyFile(c);
  const dataDir = path.resolve(c.dataDir);
  if (!c.redis && !fs.existsSync(dataDir)) return null; // no embedded store yet: nothing sealed
  // A missing key file is checked with a key that opens nothing (the file is not created here).
  const box = fs.existsSync(file) ? SecretBox.fromFile(file) : null;
  const probe = box ?? new SecretBox([{ id: 'none', key: crypto.randomBytes(32) }]);
  const silent = createLogger({ level: 'fatal', pretty: false, destination: process.stderr as never });
  let store: Store | null = null;
  try {
    store = await openWithKey(() => (c.redis ? openStore(c, probe, silent) : FileStore.open(dataDir, probe, silent, { watch: false, readOnlyState: true })), box, file);
    await checkSecretKey(store, box, file, { write: false });
    return null;
  } catch (e) {
    if (isTaasError(e, 'TAAS_STORE_UNAVAILABLE')) return `secret key file not checked against the store: ${oneLine(e)}`;
    throw e;
  } finally {
    await store?.close();
  }
}
