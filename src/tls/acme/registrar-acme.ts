/**
 * ACME for the registrar, as the daemon composes it: the challenge book (handed to the
 * registrar's TLS listener before it listens), the HTTP-01 listener when `acme.http01Port` is
 * set, and the keeper of the registrar's certificate, whose names follow the entries. Started
 * once, when `acme` is configured at start; its settings (renewBeforeDays, checkInterval, the
 * challenge, ...) are read from the live config at each check.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import type { ConfigView } from '../../config/view.js';
import { oneLine } from '../../errors.js';
import { ChallengeBook, type DocStore } from './challenges.js';
import { Http01Server } from './http01.js';
import { CertificateKeeper, type CertificateOrigin } from './keeper.js';
import { registrarAcmeNames, type NamedEntry } from './names.js';
import { keyTypeOf, type IssuedCertificate } from './order.js';
import { AcmeStorage, type Sealer } from './storage.js';

export interface RegistrarAcmeDeps {
  config: ConfigView;
  store: DocStore & { listEntries(): Promise<NamedEntry[]>; watch(listener: () => void): () => void };
  sealer: Sealer;
  logger: Logger;
  nodeId: string;
  /** The key of the certificate the registrar serves when it has no ACME one (generated or configured). */
  fallbackKey: () => string | null;
}

export class RegistrarAcme {
  readonly book: ChallengeBook;
  private readonly keeper: CertificateKeeper;
  private http01: Http01Server | null = null;
  private unwatch: (() => void) | null = null;
  private onCertificate: (c: IssuedCertificate, origin: CertificateOrigin) => void = () => undefined;

  private constructor(private readonly deps: RegistrarAcmeDeps) {
    this.book = new ChallengeBook(deps.store);
    const view = deps.config;
    // `acme` is read at start; a reload that removes it leaves the keeper on these values.
    const initial = view.current.acme!;
    const storage = new AcmeStorage(path.resolve(view.current.dataDir, 'acme'), 'registrar', deps.store, deps.sealer);
    this.keeper = new CertificateKeeper({
      subject: 'registrar',
      settings: () => view.current.acme ?? initial,
      names: async () => {
        const { names, dropped } = registrarAcmeNames(view.current, await deps.store.listEntries());
        if (dropped) deps.logger.warn({ dropped }, 'more names than one ACME certificate takes; the rest are left out (use acme.wildcard with a DNS-01 hook)');
        return names;
      },
      storage,
      book: this.book,
      log: deps.logger,
      holder: deps.nodeId,
      onCertificate: (c, origin) => this.onCertificate(c, origin),
      challengeKeyType: () => {
        const key = this.keeper.current?.key ?? deps.fallbackKey();
        return key ? keyTypeOf(key) : 'ec';
      },
    });
  }

  /** The ACME part of the daemon, or null when `acme` is not configured. */
  static create(deps: RegistrarAcmeDeps): RegistrarAcme | null {
    return deps.config.current.acme ? new RegistrarAcme(deps) : null;
  }

  get current(): IssuedCertificate | null {
    return this.keeper.current;
  }

  /**
   * Starts the HTTP-01 listener (if configured), loads the stored certificate (given to
   * `onCertificate` before this resolves) and schedules the first check; orders run in the
   * background and end in `onCertificate` too.
   */
  async start(onCertificate: (c: IssuedCertificate, origin: CertificateOrigin) => void): Promise<void> {
    this.onCertificate = onCertificate;
    const c = this.deps.config.current;
    if (c.acme?.http01Port !== undefined) {
      this.http01 = new Http01Server(this.book);
      await this.http01.listen(c.acme.http01Port, c.taasHost);
      this.deps.logger.info({ port: this.http01.port }, 'ACME HTTP-01 listener ready');
    }
    this.unwatch = this.deps.store.watch(() => this.keeper.poke());
    await this.keeper.start();
  }

  /** One check now (names, renewal, another node's certificate); for tests and operators. */
  check(): Promise<void> {
    return this.keeper.check();
  }

  async stop(): Promise<void> {
    this.keeper.stop();
    this.unwatch?.();
    await this.http01?.close().catch((e) => this.deps.logger.debug({ err: oneLine(e) }, 'HTTP-01 listener close'));
  }
}
