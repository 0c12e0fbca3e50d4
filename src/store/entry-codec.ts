/** Entry rules shared by both stores: sealing secrets, label ownership, versioned updates. */
import { TaasError } from '../errors.js';
import type { SecretBox } from './secret-box.js';
import type { Entry } from './types.js';

/** An entry as persisted: the secret sealed, never plaintext. */
export type SealedEntry = Omit<Entry, 'secret'> & { secretSealed: string };

export function sealEntry(e: Entry, box: SecretBox): SealedEntry {
  const { secret, ...rest } = e;
  return { ...rest, secretSealed: box.seal(secret) };
}

export function openEntry(s: SealedEntry, box: SecretBox): Entry {
  const { secretSealed, ...rest } = s;
  // Entries written before clientMode existed have none: every label is `redirect`.
  return { ...rest, clientPorts: rest.clientPorts ?? {}, ...(rest.clientMode ? { clientMode: rest.clientMode } : {}), secret: box.open(secretSealed) };
}

/** Throws TAAS_ENTRY_EXISTS / TAAS_LABEL_TAKEN when `entry` cannot join `all`. */
export function checkNewEntry(entry: Entry, all: Entry[]): void {
  if (all.some((e) => e.id === entry.id)) throw new TaasError('TAAS_ENTRY_EXISTS', `an entry with ID ${entry.id} already exists`);
  checkLabels(entry, all);
}

export function checkLabels(entry: Entry, all: Entry[]): void {
  for (const other of all) {
    if (other.id === entry.id) continue;
    const taken = entry.labels.find((l) => other.labels.includes(l));
    if (taken) throw new TaasError('TAAS_LABEL_TAKEN', `label ${taken} belongs to entry ${other.id}`);
    const port = Object.values(entry.clientPorts).find((p) => Object.values(other.clientPorts).includes(p));
    if (port !== undefined) throw new TaasError('TAAS_LABEL_TAKEN', `client port ${port} belongs to entry ${other.id}`);
  }
}

/** The stored form of an update: version checked (412 on mismatch), bumped, timestamped. */
export function nextVersion(cur: Entry, entry: Entry, expectedVersion: number | undefined, all: Entry[]): Entry {
  if (expectedVersion !== undefined && expectedVersion !== cur.version) {
    throw new TaasError('TAAS_PRECONDITION_FAILED', `entry ${cur.id} is at version ${cur.version}, not ${expectedVersion}`, { status: 412 });
  }
  checkLabels(entry, all);
  return { ...entry, createdAt: cur.createdAt, version: cur.version + 1, updatedAt: new Date().toISOString() };
}

export function dayOf(iso: string): string {
  return iso.slice(0, 10);
}
