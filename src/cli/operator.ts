/**
 * What the entry commands act through: the running daemon's admin API when one answers on this
 * data dir (its rules apply and it sees the change at once), else the store directly (the
 * daemon, if it starts later or runs elsewhere on the same store, sees it through the store).
 */
import path from 'node:path';
import type { Config } from '../config/schema.js';
import { fixedConfig } from '../config/view.js';
import { createLogger } from '../observe/logger.js';
import { RelayTls } from '../tls/relay-tls.js';
import { FileStore } from '../store/file-store.js';
import { openSecretBox, openStore } from '../store/open.js';
import { EntryService, type EntryInput } from '../entries/entry-service.js';
import type { Entry, PairingRecord, Store } from '../store/types.js';
import type { AgentFile } from '../protocol/agent-file.js';
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
}

/** A store for one command: the embedded one without watching, and without writing history. */
export async function withStore<T>(c: Readonly<Config>, fn: (store: Store, entries: EntryService) => Promise<T>): Promise<T> {
  const silent = createLogger({ level: 'error', pretty: false, destination: process.stderr as never });
  const box = openSecretBox(c);
  const store = c.redis ? await openStore(c, box, silent) : await FileStore.open(path.resolve(c.dataDir), box, silent, { watch: false, readOnlyState: true });
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
    }),
  );
}
