/**
 * Keeps one ACME certificate current: loads the stored one at start, orders when there is
 * none, when a wanted name is missing from it, or when renewal is due (`renewBeforeDays`
 * before expiry), and adopts a newer one another node stored. One node orders at a time (the
 * store lease); the others find its result at their next check. Every new certificate goes to
 * `onCertificate`, which swaps it into the live listener: no restart.
 */
import fs from 'node:fs';
import type { Logger } from 'pino';
import type { AcmeChallenge } from '../../config/schema.js';
import { TaasError, oneLine } from '../../errors.js';
import type { ChallengeBook } from './challenges.js';
import { orderCertificate, newAccountKey, type IssuedCertificate, type KeyType } from './order.js';
import type { AcmeStorage } from './storage.js';

export interface KeeperSettings {
  directoryUrl: string;
  email?: string;
  caFile?: string;
  challenge: AcmeChallenge;
  dns01Hook?: string;
  renewBeforeDays: number;
  checkInterval: number;
}

export type CertificateOrigin = 'loaded' | 'ordered' | 'picked-up';

export interface KeeperOptions {
  /** What the certificate is for, in log lines (`registrar`, a label's name). */
  subject: string;
  /** Read at each check: a reload's new values apply from the next one. */
  settings: () => KeeperSettings;
  /** The names the certificate must carry now. */
  names: () => Promise<string[]>;
  storage: AcmeStorage;
  book: ChallengeBook;
  log: Logger;
  /** The node ordering, in the lock document. */
  holder: string;
  onCertificate: (c: IssuedCertificate, origin: CertificateOrigin) => void;
  /** The key type the listener serves by default now (see OrderRequest.challengeKeyType). */
  challengeKeyType: () => KeyType;
}

/** A failed order is tried again after a minute, doubling, at most every checkInterval (CA rate limits). */
const RETRY_BASE_MS = 60_000;
/** Another node holds the order lock: look for its result this soon. */
const LOCK_WAIT_MS = 10_000;
/** Entry changes come in bursts (a script adding labels): one order for the burst. */
const POKE_DELAY_MS = 2_000;
const MAX_TIMER_MS = 2 ** 31 - 1;

/** True when `name` is on the certificate, exactly or under one of its wildcards. */
export function covers(certNames: readonly string[], name: string): boolean {
  const n = name.toLowerCase();
  return certNames.some((c) => {
    const cn = c.toLowerCase();
    if (cn === n) return true;
    if (!cn.startsWith('*.') || n.startsWith('*.')) return false;
    const dot = n.indexOf('.');
    return dot > 0 && n.slice(dot + 1) === cn.slice(2);
  });
}

export class CertificateKeeper {
  private cert: IssuedCertificate | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private failures = 0;
  private lockBusy = false;
  private stopped = false;
  /** When this keeper last ordered: renewals are at most one per checkInterval (see needs). */
  private lastOrderAt = 0;

  constructor(private readonly opts: KeeperOptions) {}

  get current(): IssuedCertificate | null {
    return this.cert;
  }

  /** Loads the stored certificate (handing it to onCertificate) and schedules the first check at once. */
  async start(): Promise<void> {
    await this.adoptStored('loaded').catch((e) => this.opts.log.warn({ subject: this.opts.subject, err: oneLine(e) }, 'stored ACME certificate not read'));
    this.schedule(0);
  }

  /** Something the names depend on changed (entries): check soon. */
  poke(): void {
    if (!this.running) this.schedule(POKE_DELAY_MS);
  }

  /** One check now (tests, and the schedule); resolves when it is done. */
  check(): Promise<void> {
    this.running ??= this.runCheck().finally(() => {
      this.running = null;
      if (!this.stopped) this.schedule(this.nextDelay());
    });
    return this.running;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.check(), Math.max(0, Math.min(ms, MAX_TIMER_MS))).unref();
  }

  private async runCheck(): Promise<void> {
    const log = this.opts.log;
    try {
      const names = await this.opts.names();
      await this.adoptStored('picked-up');
      const reason = this.needs(names);
      if (reason) await this.renew(names, reason);
      this.failures = 0;
    } catch (e) {
      this.failures++;
      log.warn({ subject: this.opts.subject, errorCode: e instanceof TaasError ? e.code : undefined, err: oneLine(e), retryInMs: this.nextDelay() }, 'ACME certificate not obtained');
    }
  }

  /** Why a new certificate is needed now, or null. */
  private needs(names: string[]): string | null {
    const c = this.cert;
    if (!c) return 'no certificate yet';
    const missing = names.filter((n) => !covers(c.names, n));
    if (missing.length) return `names not on the certificate: ${missing.join(', ')}`;
    // A renewBeforeDays longer than the CA's validity would make every new certificate due at
    // once; one renewal per checkInterval keeps that from hammering the CA (rate limits).
    if (Date.now() >= this.renewAt(c) && Date.now() - this.lastOrderAt >= this.opts.settings().checkInterval * 1000) return 'renewal due';
    return null;
  }

  private renewAt(c: IssuedCertificate): number {
    return Date.parse(c.notAfter) - this.opts.settings().renewBeforeDays * 86_400_000;
  }

  private async renew(names: string[], reason: string): Promise<void> {
    const { storage, log } = this.opts;
    this.lockBusy = !(await storage.lock(this.opts.holder));
    if (this.lockBusy) {
      log.info({ subject: this.opts.subject, reason }, 'ACME order left to the node holding the lock');
      return;
    }
    try {
      // The node that held the lock a moment ago may have just stored what we need.
      await this.adoptStored('picked-up');
      const still = this.needs(names);
      if (!still) return;
      const s = this.opts.settings();
      log.info({ subject: this.opts.subject, names, reason: still, directory: s.directoryUrl, challenge: s.challenge }, 'ACME order started');
      const accountKey = await storage.accountKey(newAccountKey);
      const issued = await orderCertificate({
        directoryUrl: s.directoryUrl,
        email: s.email,
        directoryCa: s.caFile ? readCa(s.caFile) : undefined,
        accountKey,
        names,
        challenge: s.challenge,
        dns01Hook: s.dns01Hook,
        challengeKeyType: this.opts.challengeKeyType(),
        book: this.opts.book,
        note: (msg, fields) => log.debug({ subject: this.opts.subject, ...fields }, msg),
      });
      this.lastOrderAt = Date.now();
      await storage.saveCert(issued);
      this.adopt(issued, 'ordered');
    } finally {
      await storage.unlock().catch((e) => log.warn({ err: oneLine(e) }, 'ACME order lock not released; it expires by itself'));
    }
  }

  /** Takes the stored certificate when it is newer than the one in use. */
  private async adoptStored(origin: CertificateOrigin): Promise<void> {
    const stored = await this.opts.storage.loadCert((e) => this.opts.log.warn({ subject: this.opts.subject, errorCode: e.code, err: e.message }, 'stored ACME certificate unusable; ordering a new one'));
    if (!stored || Date.parse(stored.notAfter) <= Date.now()) return;
    if (this.cert && (stored.cert === this.cert.cert || Date.parse(stored.notAfter) <= Date.parse(this.cert.notAfter))) return;
    this.opts.storage.keepLocally(stored);
    this.adopt(stored, origin);
  }

  private adopt(c: IssuedCertificate, origin: CertificateOrigin): void {
    this.cert = c;
    const msg = origin === 'ordered' ? 'ACME certificate obtained' : origin === 'loaded' ? 'ACME certificate loaded' : 'ACME certificate picked up from the store';
    this.opts.log.info({ subject: this.opts.subject, names: c.names, notAfter: c.notAfter, renewAt: new Date(this.renewAt(c)).toISOString() }, msg);
    this.opts.onCertificate(c, origin);
  }

  private nextDelay(): number {
    const interval = this.opts.settings().checkInterval * 1000;
    if (this.failures > 0) return Math.min(interval, RETRY_BASE_MS * 2 ** (this.failures - 1));
    if (this.lockBusy) return Math.min(interval, LOCK_WAIT_MS);
    if (!this.cert) return interval;
    const now = Date.now();
    const due = Math.max(this.renewAt(this.cert), this.lastOrderAt + interval);
    return Math.max(1000, Math.min(interval, due - now));
  }
}

function readCa(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new TaasError('TAAS_FILE_UNREADABLE', `acme.caFile ${file}: ${oneLine(e)}`);
  }
}
