/**
 * The management key: on first start the daemon writes `<dataDir>/admin.key` (0600), a key with
 * every permission, which the CLI uses to reach the admin API. The file is the source of truth:
 * if its key is missing from the store (a fresh Redis, a lost state file) or revoked, a new one
 * is made and the file rewritten.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../util/atomic-file.js';
import { TaasError, oneLine } from '../errors.js';
import type { ApiKeys } from './keys.js';

export function managementKeyFile(dataDir: string): string {
  return path.resolve(dataDir, 'admin.key');
}

/** Reads the management key, or null when there is none (no daemon has started here). */
export function readManagementKey(dataDir: string): string | null {
  const file = managementKeyFile(dataDir);
  try {
    return fs.readFileSync(file, 'utf8').trim() || null;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new TaasError('TAAS_FILE_UNREADABLE', `management key ${file}: ${oneLine(e)}`);
  }
}

/** Ensures a usable management key exists in the store and in the file; returns its id. */
export async function ensureManagementKey(keys: ApiKeys, dataDir: string): Promise<string> {
  const existing = readManagementKey(dataDir);
  if (existing) {
    const rec = await keys.verify(existing).catch(() => null);
    if (rec) return rec.id;
  }
  const { key, record } = await keys.create({ name: 'management (admin.key)', permissions: ['read', 'write', 'keys'], management: true });
  fs.mkdirSync(path.dirname(managementKeyFile(dataDir)), { recursive: true, mode: 0o700 });
  writeFileAtomic(managementKeyFile(dataDir), key + '\n', 0o600);
  return record.id;
}
