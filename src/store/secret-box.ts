/**
 * Encrypts TOTP secrets at rest (AES-256-GCM) with a key the operator holds in a file (0600,
 * created on first start). A copied store or Redis dump reveals no secret without that file;
 * losing the file makes every stored secret unreadable (entries must be re-issued).
 * Sealed form: `v1.<keyId>.<iv>.<tag>.<ciphertext>` (base64url parts). The key file may hold
 * several keys (the newest seals; all open), which is how `store rotate-key` works.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { TaasError } from '../errors.js';

/** A stored secret that this box cannot open: the key file is not the one it was sealed with (or the value is damaged). */
export class UnopenedSecret extends TaasError {
  constructor(message: string) {
    super('TAAS_FILE_UNREADABLE', message);
  }
}

interface KeyFile {
  keys: { id: string; key: string }[];
}

export class SecretBox {
  private keys!: Map<string, Buffer>;
  private current!: string;
  /** The key file this box was read from: re-read when a sealed value names a key not yet known. */
  private file: string | null = null;

  constructor(keys: { id: string; key: Buffer }[]) {
    this.setKeys(keys);
  }

  private setKeys(keys: { id: string; key: Buffer }[]): void {
    if (keys.length === 0) throw new TaasError('TAAS_FILE_UNREADABLE', 'secret key file holds no key');
    if (keys.some((k) => typeof k.id !== 'string' || k.key.length !== 32)) throw new TaasError('TAAS_FILE_UNREADABLE', 'secret key file: every key needs an id and 32 bytes (base64)');
    this.keys = new Map(keys.map((k) => [k.id, k.key]));
    this.current = keys[keys.length - 1]!.id;
  }

  get currentKeyId(): string {
    return this.current;
  }

  seal(plain: string): string {
    // A key appended by `store rotate-key` is used from the next seal on, without a restart.
    if (this.file && this.fileChanged()) this.reload();
    const iv = crypto.randomBytes(12);
    const c = crypto.createCipheriv('aes-256-gcm', this.keys.get(this.current)!, iv);
    const ct = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
    return ['v1', this.current, iv.toString('base64url'), c.getAuthTag().toString('base64url'), ct.toString('base64url')].join('.');
  }

  open(sealed: string): string {
    const [v, kid, iv, tag, ct] = sealed.split('.');
    // `store rotate-key` appended a key and re-sealed while this process ran: take the new file.
    if (kid !== undefined && !this.keys.has(kid) && this.file) this.reload();
    const key = kid === undefined ? undefined : this.keys.get(kid);
    if (v !== 'v1' || !key || !iv || !tag || ct === undefined) {
      throw new UnopenedSecret(`a stored secret cannot be opened (key ${kid ?? '?'} is not in the secret key file)`);
    }
    try {
      // The tag length is pinned: GCM would otherwise accept a truncated tag (down to 4 bytes),
      // and a damaged value must be a TaasError, not a TypeError from setAuthTag.
      const d = crypto.createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'), { authTagLength: 16 });
      d.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([d.update(Buffer.from(ct, 'base64url')), d.final()]).toString('utf8');
    } catch {
      throw new UnopenedSecret(`a stored secret failed authentication with key ${kid}`);
    }
  }

  private loadedMtime = 0;

  private fileChanged(): boolean {
    try {
      return fs.statSync(this.file!).mtimeMs !== this.loadedMtime;
    } catch {
      return false;
    }
  }

  /** Re-reads the key file (kept as it was when the file is unreadable: a half-copied file must not lock us out). */
  private reload(): void {
    try {
      this.loadedMtime = fs.statSync(this.file!).mtimeMs;
      this.setKeys(readKeyFile(this.file!));
    } catch {
      /* the open() that follows reports the unknown key */
    }
  }

  /** Loads the key file, creating it (mode 0600) with one fresh key when absent. */
  static fromFile(file: string): SecretBox {
    if (!fs.existsSync(file)) {
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      writeKeyFile(file, { keys: [newKey()] });
    }
    const mtime = fs.statSync(file).mtimeMs;
    const box = new SecretBox(readKeyFile(file));
    box.file = file;
    box.loadedMtime = mtime;
    return box;
  }

  /** Rewrites the key file with only the current key (after every secret was re-sealed with it). */
  static keepOnlyCurrent(file: string): SecretBox {
    const box = SecretBox.fromFile(file);
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as KeyFile;
    writeKeyFile(file, { keys: parsed.keys.filter((k) => k.id === box.currentKeyId) });
    return SecretBox.fromFile(file);
  }

  /**
   * A short fingerprint of key `id` (null when this box lacks it): a hash that tells keys
   * apart without revealing them, kept in the store to catch a node with another key file.
   */
  fingerprint(id: string): string | null {
    const key = this.keys.get(id);
    return key ? crypto.createHash('sha256').update('taas secret key fingerprint\0').update(key).digest('hex').slice(0, 16) : null;
  }

  /** Ids of the keys this box can open with, oldest first. */
  get keyIds(): string[] {
    return [...this.keys.keys()];
  }

  /** Appends a new key to the file; the caller re-seals stored secrets with the new box. */
  static addKey(file: string): SecretBox {
    const parsed: KeyFile = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : { keys: [] };
    parsed.keys.push(newKey());
    writeKeyFile(file, parsed);
    return SecretBox.fromFile(file);
  }
}

function readKeyFile(file: string): { id: string; key: Buffer }[] {
  let parsed: KeyFile;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new TaasError('TAAS_FILE_UNREADABLE', `secret key file ${file}: ${(e as Error).message}`);
  }
  if (!Array.isArray(parsed?.keys)) throw new TaasError('TAAS_FILE_UNREADABLE', `secret key file ${file}: no "keys" list`);
  return parsed.keys.map((k) => ({ id: k?.id, key: Buffer.from(typeof k?.key === 'string' ? k.key : '', 'base64') }));
}

function newKey(): { id: string; key: string } {
  return { id: crypto.randomBytes(4).toString('hex'), key: crypto.randomBytes(32).toString('base64') };
}

function writeKeyFile(file: string, content: KeyFile): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, JSON.stringify(content, null, 2) + '\n');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  fs.chmodSync(file, 0o600);
}
