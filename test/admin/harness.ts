/**
 * Starts the real admin server on 127.0.0.1 port 0 over a FileStore in a temp dir, with the
 * real EntryService, and gives tests a small fetch wrapper. Live state is whatever the test
 * sets in `live`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { validate } from '../../src/config/schema.js';
import { fixedConfig } from '../../src/config/view.js';
import { startAdmin } from '../../src/admin/server.js';
import type { NodeLiveState } from '../../src/admin/deps.js';
import { readManagementKey } from '../../src/admin/management-key.js';
import { EntryService } from '../../src/entries/entry-service.js';
import { RelayTls } from '../../src/tls/relay-tls.js';
import { FileStore } from '../../src/store/file-store.js';
import { RedisStore } from '../../src/store/redis-store.js';
import type { Store } from '../../src/store/types.js';
import { SecretBox } from '../../src/store/secret-box.js';

export interface Harness {
  url: string;
  dir: string;
  store: Store;
  entries: EntryService;
  /** The key in admin.key (null while the store has not let the server write one). */
  managementKey: string;
  live: NodeLiveState[];
  /** A second admin server (another node: its own data dir and signing key) over the same store. */
  startPeer(): Promise<{ url: string; dir: string; close(): Promise<void> }>;
  close(): Promise<void>;
  /** fetch against the admin URL; `key` adds X-API-Key; JSON bodies are encoded. */
  call(method: string, p: string, opts?: { key?: string; body?: unknown; headers?: Record<string, string>; raw?: string }): Promise<{ status: number; headers: Headers; body: any; text: string }>;
}

/** `tls: true` generates the registrar CA in the data dir so agent files carry a real `ca`. */
export async function startHarness(overrides: Record<string, unknown> = {}, opts: { tls?: boolean; redis?: string } = {}): Promise<Harness> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'taas-admin-'));
  const config = validate({ dataDir: dir, adminPort: 0, taasPort: 8443, logLevel: 'silent', ...overrides });
  const box = SecretBox.fromFile(path.join(dir, 'secret.key'));
  const store: Store = opts.redis ? await RedisStore.connect(opts.redis, box, pino({ level: 'silent' })) : await FileStore.open(dir, box, undefined, { watch: false });
  const tls = opts.tls ? RelayTls.load(config, { generate: true }) : null;
  const entries = new EntryService(store, { config: fixedConfig(config), tls: () => tls });
  const h: Partial<Harness> = { dir, store, entries, live: [] };
  const admin = await startAdmin({ config: fixedConfig(config), store, entries, live: () => h.live!, logger: pino({ level: 'silent' }) });
  h.url = admin.url;
  h.startPeer = async () => {
    const peerDir = fs.mkdtempSync(path.join(os.tmpdir(), 'taas-admin-peer-'));
    const peer = await startAdmin({ config: fixedConfig(validate({ ...config, dataDir: peerDir })), store, entries, live: () => h.live!, logger: pino({ level: 'silent' }) });
    return {
      url: peer.url,
      dir: peerDir,
      async close() {
        await peer.close();
        fs.rmSync(peerDir, { recursive: true, force: true });
      },
    };
  };
  h.managementKey = readManagementKey(dir)!;
  h.close = async () => {
    await admin.close();
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  h.call = async (method, p, opts = {}) => {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (opts.key) headers['x-api-key'] = opts.key;
    let body: string | undefined = opts.raw;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['content-type'] ??= 'application/json';
    }
    const res = await fetch(h.url + p, { method, headers, body });
    const text = await res.text();
    let parsed: unknown = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    return { status: res.status, headers: res.headers, body: parsed, text };
  };
  return h as Harness;
}
