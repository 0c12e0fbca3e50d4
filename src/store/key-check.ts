/**
 * Catches a node whose secret key file is not the one the store's secrets are sealed with
 * (a second node started without the cluster's `secretKeyFile`, or a data dir whose secret.key
 * was replaced). Without this check such a node starts fine and then answers every
 * registration of an entry sealed elsewhere with 500. The store keeps the id and fingerprint of
 * the key that seals (written on first use, updated after a rotation); at start the key file
 * must hold that key with that fingerprint.
 */
import { TaasError } from '../errors.js';
import { UnopenedSecret, type SecretBox } from './secret-box.js';
import type { Store } from './types.js';

/** Where the fingerprint is kept: a document shared by every node of the store. */
const NS = 'meta';
const KEY = 'secret-key';

export interface KeyMark {
  keyId: string;
  fingerprint: string;
}

export interface KeyCheckOptions {
  /** Record the key on first use and after a rotation (the daemon); false only reads (CLI). */
  write: boolean;
}

function held(box: SecretBox | null): string {
  return box ? ` (it holds key${box.keyIds.length === 1 ? '' : 's'} ${box.keyIds.join(', ')})` : '';
}

function mismatch(file: string, mark: KeyMark, box: SecretBox | null, why: string): TaasError {
  return new TaasError(
    'TAAS_SECRET_KEY_MISMATCH',
    `secret key file ${file}${held(box)} differs from the store's: its secrets are sealed with key ${mark.keyId} (fingerprint ${mark.fingerprint}), ${why}; give this node the cluster's secretKeyFile`,
  );
}

/**
 * The same one line for a stored secret that does not open with `box`: the embedded store opens
 * every secret as it loads, before a recorded key can be compared, so it fails this way.
 */
export function unopenedMismatch(file: string, box: SecretBox | null, e: UnopenedSecret): TaasError {
  return new TaasError('TAAS_SECRET_KEY_MISMATCH', `secret key file ${file}${held(box)} differs from the store's: ${e.message}; give this node the cluster's secretKeyFile`);
}

/** Opens the store (`open`), turning a secret that does not open with `box` into that line. */
export async function openWithKey<T extends Store>(open: () => Promise<T>, box: SecretBox | null, file: string): Promise<T> {
  try {
    return await open();
  } catch (e) {
    throw e instanceof UnopenedSecret ? unopenedMismatch(file, box, e) : e;
  }
}

/** True when every stored entry's secret opens with `box` (and there is at least one). */
async function entriesOpen(store: Store): Promise<boolean> {
  try {
    return (await store.listEntries()).length > 0;
  } catch (e) {
    if (e instanceof UnopenedSecret) return false;
    throw e;
  }
}

/**
 * Throws TAAS_SECRET_KEY_MISMATCH (one line naming the key file) when `box` is not the store's
 * key; `box` null means the key file does not exist. TAAS_STORE_UNAVAILABLE passes through.
 */
export async function checkSecretKey(store: Store, box: SecretBox | null, file: string, opts: KeyCheckOptions): Promise<void> {
  const mark = await store.getDoc<KeyMark>(NS, KEY);
  const current = box ? { keyId: box.currentKeyId, fingerprint: box.fingerprint(box.currentKeyId)! } : null;
  if (!mark) {
    // First use of this check on the store: secrets sealed before it must open with this file.
    try {
      await store.listEntries();
    } catch (e) {
      throw e instanceof UnopenedSecret ? unopenedMismatch(file, box, e) : e;
    }
    if (opts.write && current) await record(store, current, box!, file);
    return;
  }
  if (!box) throw mismatch(file, mark, null, 'and that file does not exist');
  const fp = box.fingerprint(mark.keyId);
  if (fp !== null && fp !== mark.fingerprint) throw mismatch(file, mark, box, `but this file's key ${mark.keyId} has fingerprint ${fp}`);
  // The recorded key was dropped from the file by `store rotate-key --drop-old`: fine when every
  // stored secret opens with the file (re-sealed); otherwise this is another cluster's file.
  if (fp === null && !(await entriesOpen(store))) throw mismatch(file, mark, box, 'which this file lacks');
  if (opts.write && current && current.keyId !== mark.keyId) await record(store, current, box, file);
}

/** Records `mark`, then reads it back: of two nodes starting at once with different keys, one is refused. */
async function record(store: Store, mark: KeyMark, box: SecretBox, file: string): Promise<void> {
  await store.putDoc(NS, KEY, mark);
  const stored = await store.getDoc<KeyMark>(NS, KEY);
  if (stored && box.fingerprint(stored.keyId) !== stored.fingerprint) throw mismatch(file, stored, box, 'recorded by another node just now');
}
