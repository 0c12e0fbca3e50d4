/**
 * Where ACME material lives: files in `<dir>` (the daemon's `<dataDir>/acme`, the agent's
 * `--acme-dir`), every one mode 0600, and, for the daemon, the store's `acme` documents so
 * that the nodes of a relay share one account and one certificate (private keys sealed with
 * the store's secret key, like TOTP secrets). The newer of file and store wins; a node writes
 * both. The order lock is a store lease (claimDoc) so that one node orders at a time.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { TaasError, oneLine } from '../../errors.js';
import { writeFileAtomic } from '../../util/atomic-file.js';
import type { DocStore } from './challenges.js';
import { certNotAfter, type IssuedCertificate } from './order.js';

export const ACME_NS = 'acme';
/** An order takes seconds to a couple of minutes; a crashed holder frees the lock after ten. */
const LOCK_TTL_S = 600;

/** Seals private keys for the shared store (the store's SecretBox); none for the agent. */
export interface Sealer {
  seal(plain: string): string;
  open(sealed: string): string;
}

interface SharedCert {
  key: string;
  cert: string;
  names: string[];
  notAfter: string;
}

export class AcmeStorage {
  private readonly lockId = crypto.randomUUID();

  constructor(
    private readonly dir: string,
    /** What the certificate is for: `registrar`, or the agent's label name. Its file and document name. */
    private readonly subject: string,
    private readonly shared: DocStore | null,
    private readonly sealer: Sealer | null,
  ) {}

  private file(name: string): string {
    return path.join(this.dir, name);
  }

  private write(name: string, data: string): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writeFileAtomic(this.file(name), data, 0o600);
  }

  private read(name: string): string | null {
    try {
      return fs.readFileSync(this.file(name), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new TaasError('TAAS_ACME_STORED_INVALID', `${this.file(name)}: ${oneLine(e)}`);
    }
  }

  /** The account key: the store's, else the file's, else a new one; kept in both. */
  async accountKey(create: () => Promise<string>): Promise<string> {
    const doc = await this.shared?.getDoc<{ key: string }>(ACME_NS, 'account');
    let key = doc ? this.unseal(doc.key, 'account key') : this.read('account.key');
    const fresh = key === null;
    key ??= await create();
    if (this.read('account.key') !== key) this.write('account.key', key);
    if (this.shared && (fresh || !doc)) await this.shared.putDoc(ACME_NS, 'account', { key: this.seal(key) });
    return key;
  }

  /** The newest stored certificate (store or file), or null. A damaged one is skipped (and said). */
  async loadCert(onDamaged: (e: TaasError) => void): Promise<IssuedCertificate | null> {
    let fromStore: IssuedCertificate | null = null;
    try {
      const doc = await this.shared?.getDoc<SharedCert>(ACME_NS, `cert:${this.subject}`);
      if (doc) fromStore = { ...doc, key: this.unseal(doc.key, 'certificate key') };
    } catch (e) {
      if (e instanceof TaasError && e.code === 'TAAS_ACME_STORED_INVALID') onDamaged(e);
      else throw e;
    }
    let fromFile: IssuedCertificate | null = null;
    try {
      fromFile = this.readFiles();
    } catch (e) {
      if (e instanceof TaasError) onDamaged(e);
      else throw e;
    }
    if (!fromStore) return fromFile;
    if (!fromFile) return fromStore;
    return Date.parse(fromFile.notAfter) > Date.parse(fromStore.notAfter) ? fromFile : fromStore;
  }

  private readFiles(): IssuedCertificate | null {
    const key = this.read(`${this.subject}.key`);
    const cert = this.read(`${this.subject}.crt`);
    if (key === null || cert === null) return null;
    try {
      const x = new crypto.X509Certificate(cert);
      crypto.createPrivateKey(key);
      const names = (x.subjectAltName ?? '').split(', ').filter((n) => n.startsWith('DNS:')).map((n) => n.slice(4));
      return { key, cert, names, notAfter: certNotAfter(cert).toISOString() };
    } catch (e) {
      throw new TaasError('TAAS_ACME_STORED_INVALID', `${this.file(`${this.subject}.crt`)}: ${oneLine(e)}`);
    }
  }

  /** Keeps a new certificate in the data dir (0600) and, shared, in the store. */
  async saveCert(c: IssuedCertificate): Promise<void> {
    this.write(`${this.subject}.key`, c.key);
    this.write(`${this.subject}.crt`, c.cert);
    await this.shared?.putDoc(ACME_NS, `cert:${this.subject}`, { key: this.seal(c.key), cert: c.cert, names: c.names, notAfter: c.notAfter } satisfies SharedCert);
  }

  /** Writes the files of a certificate another node stored, so a restart without the store has it. */
  keepLocally(c: IssuedCertificate): void {
    if (this.read(`${this.subject}.crt`) === c.cert) return;
    this.write(`${this.subject}.key`, c.key);
    this.write(`${this.subject}.crt`, c.cert);
  }

  /** True when this node may order now (no other node holds the lease). Always true unshared. */
  async lock(holder: string): Promise<boolean> {
    if (!this.shared) return true;
    return this.shared.claimDoc(ACME_NS, `lock:${this.subject}`, { holder, id: this.lockId, at: new Date().toISOString() }, LOCK_TTL_S);
  }

  async unlock(): Promise<void> {
    if (!this.shared) return;
    const doc = await this.shared.getDoc<{ id: string }>(ACME_NS, `lock:${this.subject}`);
    // Only our own lease: one that expired and was taken by another node stays theirs.
    if (doc?.id === this.lockId) await this.shared.deleteDoc(ACME_NS, `lock:${this.subject}`);
  }

  private seal(plain: string): string {
    return this.sealer ? this.sealer.seal(plain) : plain;
  }

  private unseal(sealed: string, what: string): string {
    try {
      return this.sealer ? this.sealer.open(sealed) : sealed;
    } catch (e) {
      throw new TaasError('TAAS_ACME_STORED_INVALID', `the store's ACME ${what} cannot be opened: ${oneLine(e)}`);
    }
  }
}
