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

interface KeyFile {
  keys: { id: string; key: string }[];
}

export class SecretBox {
  private readonly keys: Map<string, Buffer>;
  private readonly current: string;

  constructor(keys: { id: string; key: Buffer }[]) {
    if (keys.length === 0) throw new TaasError('TAAS_FILE_UNREADABLE', 'secret key file holds no key');
    this.keys = new Map(keys.map((k) => [k.id, k.key]));
    this.current = keys[keys.length - 1]!.id;
  }

  get currentKeyId(): string {
    return this.current;
  }

  seal(plain: string): string {
    const iv = crypto.randomBytes(12);
    const c = crypto.createCipheriv('aes-256-gcm', this.keys.get(this.current)!, iv);
    const ct = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
    return ['v1', this.current, iv.toString('base64url'), c.getAuthTag().toString('base64url'), ct.toString('base64url')].join('.');
  }

  open(sealed: string): string {
    const [v, kid, iv, tag, ct] = sealed.split('.');
    const key = kid === undefined ? undefined : this.keys.get(kid);
    if (v !== 'v1' || !key || !iv || !tag || ct === undefined) {
      throw new TaasError('TAAS_FILE_UNREADABLE', `a stored secret cannot be opened (key ${kid ?? '?'} is not in the secret key file)`);
    }
    try {
      // The tag length is pinned: GCM would otherwise accept a truncated tag (down to 4 bytes),
      // and a damaged value must be a TaasError, not a TypeError from setAuthTag.
      const d = crypto.createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'), { authTagLength: 16 });
      d.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([d.update(Buffer.from(ct, 'base64url')), d.final()]).toString('utf8');
    } catch {
      throw new TaasError('TAAS_FILE_UNREADABLE', `a stored secret failed authentication with key ${kid}`);
    }
  }

  isSealedWithCurrent(sealed: string): boolean {
    return sealed.split('.')[1] === this.current;
  }

  /** Loads the key file, creating it (mode 0600) with one fresh key when absent. */
  static fromFile(file: string): SecretBox {
    if (!fs.existsSync(file)) {
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      writeKeyFile(file, { keys: [newKey()] });
    }
    let parsed: KeyFile;
    try {
      parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      throw new TaasError('TAAS_FILE_UNREADABLE', `secret key file ${file}: ${(e as Error).message}`);
    }
    if (!Array.isArray(parsed?.keys)) throw new TaasError('TAAS_FILE_UNREADABLE', `secret key file ${file}: no "keys" list`);
    return new SecretBox(parsed.keys.map((k) => ({ id: k.id, key: Buffer.from(k.key, 'base64') })));
  }

  /** Appends a new key to the file; the caller re-seals stored secrets with the new box. */
  static addKey(file: string): SecretBox {
    const parsed: KeyFile = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : { keys: [] };
    parsed.keys.push(newKey());
    writeKeyFile(file, parsed);
    return SecretBox.fromFile(file);
  }
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
