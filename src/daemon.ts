/**
 * Composition root: config → store → auth → relay → registrar → admin. Also the daemon's
 * life cycle: drain on SIGTERM, reload on SIGHUP, and writing the runtime file
 * (observe/runtime-file.ts) through which the CLI and tests find a running daemon's ports.
 */
import { LabelHistory, sumSeries, type LabelSeries } from './observe/label-history.js';
import type { LabelPolicy } from './protocol/policy.js';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { reloaded, type Config } from './config/schema.js';
import { loadConfig } from './config/load.js';
import { LiveConfig } from './config/view.js';
import { TaasError, isTaasError, oneLine } from './errors.js';
import { Authenticator } from './auth/guard.js';
import { openSecretBox, openStore, secretKeyFile } from './store/open.js';
import { checkSecretKey, openWithKey } from './store/key-check.js';
import type { SecretBox } from './store/secret-box.js';
import { EntryService } from './entries/entry-service.js';
import { ResilientStore } from './store/resilient-store.js';
import { clientModeOf, type ClientMode, type Store } from './store/types.js';
import { RelayTls } from './tls/relay-tls.js';
import { RegistrarAcme } from './tls/acme/registrar-acme.js';
import { storedAcmeRoot } from './tls/acme/issuer-root.js';
import { checkAcmeFiles } from './tls/acme/files-check.js';
import { Relay } from './relay/relay.js';
import { selectEngine } from './relay/engines/select.js';
import type { RelayEngine } from './relay/engine.js';
import { RegistrarRoutes } from './registrar/routes.js';
import { RegistrarServer } from './registrar/server.js';
import { removeRuntime, writeRuntime, type RuntimeInfo } from './observe/runtime-file.js';
import { NodeLink, defaultNodeId } from './cluster/node-link.js';
import { formatEndpoint, nodeHost } from './protocol/endpoint.js';
import { createMetrics, type Metrics } from './observe/metrics.js';
import { attachEventLog } from './observe/event-log.js';

/** How often a secret key check that found the store unreachable at start is tried again. */
const KEY_RECHECK_MS = 2000;

/** Documents read at start, so that they serve through a store outage: API keys (a scrape of /metrics needs one). */
const PRELOADED_DOCS = ['apikeys'];

/** After drainTimeout, how long closed pairings get to report their end (the engine is quick). */
const DRAIN_CLOSE_WAIT_MS = 2000;

export interface AdminHandle {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Store documents of each node's label series (multi-node), refreshed this often, kept this long. */
const HISTORY_DOCS = 'label-history';
const HISTORY_PUBLISH_MS = 15_000;
const HISTORY_TTL_S = 120;

interface PublishedHistory {
  at: number;
  labels: Record<string, LabelSeries>;
}

export class Daemon {
  private drainingFlag = false;
  private admin: AdminHandle | null = null;
  private unwatch: (() => void) | null = null;
  private metrics: Metrics | null = null;
  private detachEventLog: (() => void) | null = null;
  private history: LabelHistory | null = null;
  private historyTimer: NodeJS.Timeout | null = null;
  private link: NodeLink | null = null;
  /** The registrar's ACME certificate keeper (config `acme`), or null. */
  private acme: RegistrarAcme | null = null;

  private constructor(
    /** The one live config: every part got its view; only reload() replaces it. */
    private readonly live: LiveConfig,
    readonly configFile: string | null,
    readonly logger: Logger,
    readonly store: ResilientStore,
    readonly engine: RelayEngine,
    readonly relay: Relay,
    readonly auth: Authenticator,
    readonly routes: RegistrarRoutes,
    readonly registrar: RegistrarServer,
    readonly entries: EntryService,
    private tls: RelayTls | null,
    readonly nodeId: string,
  ) {}

  private keyRecheck: NodeJS.Timeout | null = null;
  private stopped = false;

  /**
   * `onFatal` is told when the daemon finds after start that it must not run (a secret key
   * file that is not the store's, seen once an unreachable store answers): its owner stops it.
   */
  static async start(config: Readonly<Config>, configFile: string | null, logger: Logger, onFatal?: (e: TaasError) => void): Promise<Daemon> {
    fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    checkAcmeFiles(config);
    const tls = RelayTls.load(config, { generate: config.generateCert });
    const box = openSecretBox(config);
    const raw = await openWithKey(() => openStore(config, box, logger), box, secretKeyFile(config));
    let keyChecked = true;
    try {
      await checkSecretKey(raw, box, secretKeyFile(config), { write: true });
    } catch (e) {
      // The store being away at start is not a mismatch: the late-Redis start still works, and
      // the check is made again until the store answers (recheckKey).
      if (!isTaasError(e, 'TAAS_STORE_UNAVAILABLE')) {
        await raw.close();
        throw e;
      }
      keyChecked = false;
      logger.warn({ err: oneLine(e) }, 'secret key not checked against the store: it is unreachable; checking again until it answers');
    }
    // The daemon's store serves from what it knows through an outage of the real one (issue 17).
    const store = await ResilientStore.open(raw, logger, { preloadDocs: PRELOADED_DOCS });
    const { engine, note } = await selectEngine(config.relayEngine, logger);
    if (note) logger.warn(note);
    const nodeId = config.nodeId ?? defaultNodeId(config);
    const live = new LiveConfig(config);
    const view = live.view;
    // A label policy's quota counts the day's octets of every node: the store's daily counts.
    const dailyBytes = async (label: string, day: string) => (await store.listDailyCounts(label)).find((c) => c.day === day)?.bytes ?? 0;
    const relay = new Relay({ config: view, engine, logger, nodeId, dailyBytes });
    const auth = new Authenticator(store, view, logger);
    let d: Daemon | null = null;
    const routes = new RegistrarRoutes({
      config: view,
      store,
      auth,
      relay,
      logger,
      // HTTPS or HTTP is fixed for the daemon's life: a reload swaps certificates, never the scheme.
      tls: () => tls !== null,
      draining: () => d?.drainingFlag ?? false,
      elsewhere: async (label, client) => (d?.link ? d.link.elsewhere(label, client) : null),
      registerElsewhere: async () => (d?.link ? d.link.registerElsewhere(tls !== null) : null),
      sharedPort: () => (registrar.sharedPort ? registrar.port : null),
    });
    if (config.acme && !tls) {
      await store.close();
      throw new TaasError('TAAS_CONFIG_INVALID', 'config key acme: the registrar must speak HTTPS for ACME (TLS-ALPN-01); set generateCert true or give keyFile/certFile');
    }
    const acme = RegistrarAcme.create({ config: view, store, sealer: box, logger, nodeId, fallbackKey: () => (d?.tls ?? tls)?.material.key ?? null });
    const registrar = new RegistrarServer(view, tls, routes, logger, acme?.book ?? null, {
      relay,
      elsewhere: async (label, client) => (d?.link ? d.link.elsewhere(label, client) : null),
    });
    await registrar.listen();
    const entries = new EntryService(store, {
      config: view,
      tls: () => d?.tls ?? tls,
      // Read at each use: a reloaded advertiseHost reaches the agent files made from then on.
      registrarEndpoint: () => ({ host: nodeHost(view.current), port: registrar.port }),
      peers: async () => (d?.link ? d.link.peers() : []),
    });
    d = new Daemon(live, configFile, logger, store, engine, relay, auth, routes, registrar, entries, tls, nodeId);
    if (acme) await d.startAcme(acme);
    await d.wire();
    if (!keyChecked) d.recheckKey(box, secretKeyFile(config), onFatal);
    return d;
  }

  /** The registrar's ACME certificate: each new one (stored, ordered, another node's) is swapped in. */
  private async startAcme(acme: RegistrarAcme): Promise<void> {
    this.acme = acme;
    await acme.start((c, origin) => {
      this.registrar.setTls(RelayTls.fromMaterial(this.config, c, `ACME (${origin}, until ${c.notAfter})`));
      // Agent files written from now on also pin this certificate's root.
      this.tls = this.tls?.withTrust(storedAcmeRoot(this.config, c.cert)) ?? null;
    });
  }

  /** The start's secret key check, tried again until the store answers; a mismatch is fatal. */
  private recheckKey(box: SecretBox, file: string, onFatal?: (e: TaasError) => void): void {
    const attempt = async () => {
      this.keyRecheck = null;
      try {
        await checkSecretKey(this.store.inner, box, file, { write: true });
        this.logger.info('secret key checked against the store');
      } catch (e) {
        if (isTaasError(e, 'TAAS_STORE_UNAVAILABLE')) {
          if (!this.stopped) this.keyRecheck = setTimeout(() => void attempt(), KEY_RECHECK_MS).unref();
          return;
        }
        this.logger.fatal({ err: oneLine(e) }, 'this node must not run: its secret key file is not the store\'s');
        if (e instanceof TaasError) onFatal?.(e);
      }
    };
    this.keyRecheck = setTimeout(() => void attempt(), KEY_RECHECK_MS).unref();
  }

  private async wire(): Promise<void> {
    // During a store outage the record waits in the store's outbox: only a fault is logged here.
    this.relay.on('pairing-end', (rec) => {
      this.store.addPairing(rec).catch((e) => this.logger.warn({ err: oneLine(e) }, 'pairing not recorded'));
    });
    const syncFixed = async () => {
      try {
        const map = new Map<string, number>();
        const owners = new Map<string, string>();
        const policies = new Map<string, LabelPolicy>();
        const modes = new Map<string, ClientMode>();
        for (const e of await this.store.listEntries()) {
          for (const [l, p] of Object.entries(e.clientPorts)) map.set(l, p);
          for (const l of e.labels) owners.set(l, e.id);
          for (const [l, p] of Object.entries(e.policies ?? {})) if (e.labels.includes(l)) policies.set(l, p);
          for (const l of e.labels) modes.set(l, clientModeOf(e, l));
        }
        // New pairings get a changed policy at once; a newly denied address loses its pairings.
        this.relay.setPolicies(policies);
        // The shared port routes ClientHellos by these (SNI passthrough); no store read per connection.
        this.registrar.setClientModes(modes);
        // A removed entry's hidden servers (or a moved label's former owner) get no more clients.
        this.relay.dropRevoked(owners);
        await this.relay.setFixedPorts(map);
      } catch (e) {
        this.logger.warn({ err: oneLine(e) }, 'fixed client ports not synchronised; will retry on the next change');
      }
    };
    this.metrics = createMetrics({
      relay: this.relay,
      routes: this.routes,
      store: this.store,
      engine: this.engine.name,
      config: this.live.view,
      draining: () => this.drainingFlag,
      ...(this.registrar.sharedPortEvents ? { sharedPort: this.registrar.sharedPortEvents } : {}),
      ...(this.acme ? { acmeNotAfter: () => this.acme?.current?.notAfter ?? null } : {}),
    });
    this.detachEventLog = attachEventLog(this.relay, this.routes, this.logger);
    this.history = new LabelHistory(this.relay);
    this.historyTimer = setInterval(() => this.publishHistory(), HISTORY_PUBLISH_MS);
    this.historyTimer.unref();
    // The directory talks to Redis itself: its view of other nodes is no entry to cache.
    this.link = await NodeLink.open({ store: this.store.inner, relay: this.relay, config: this.live.view, logger: this.logger, nodeId: this.nodeId, registrarPort: this.registrar.port });
    this.unwatch = this.store.watch(() => void syncFixed());
    await syncFixed();
    this.admin = await this.startAdmin();
    this.writeRuntime();
    this.logger.info(
      {
        registrar: this.registrarUrl,
        admin: this.admin?.url ?? null,
        engine: this.engine.name,
        store: this.store.kind,
        dataDir: path.resolve(this.config.dataDir),
        config: this.configFile ?? '(embedded default)',
        tls: this.tls?.source ?? 'none (plain HTTP)',
      },
      'taas-server ready',
    );
  }

  private async startAdmin(): Promise<AdminHandle | null> {
    try {
      const { startAdmin } = await import('./admin/server.js');
      return await startAdmin({
        config: this.live.view,
        store: this.store,
        entries: this.entries,
        history: (label: string) => this.labelHistory(label),
        live: async () => {
          const local = [{ nodeId: this.nodeId, labels: this.relay.snapshot() }];
          // Every node's view when several share Redis; this node's alone if Redis is away.
          return this.link ? this.link.liveStates().catch(() => local) : local;
        },
        logger: this.logger,
        metrics: this.metrics?.registry,
        notReady: () => (this.drainingFlag ? new TaasError('TAAS_DRAINING', 'this node is draining (SIGTERM); it takes no new registrations') : null),
        setLogLevel: (level: string) => {
          this.logger.level = level;
        },
      });
    } catch (e) {
      this.logger.error({ err: oneLine(e) }, 'admin listener not started');
      return null;
    }
  }

  /**
   * A label's last hour over every node: this node's series, and with Redis the series the other
   * nodes published (recent ones only: a node gone for two publishing periods is left out).
   */
  private async labelHistory(label: string): Promise<LabelSeries> {
    const local = this.history!.series(label);
    if (this.store.kind !== 'redis') return local;
    const docs = await this.store.listDocs<PublishedHistory>(HISTORY_DOCS).catch(() => []);
    const others = docs.filter((d) => d.key !== this.nodeId && Date.now() - d.value.at < 2 * HISTORY_PUBLISH_MS).map((d) => d.value.labels[label]).filter((s) => s !== undefined);
    return sumSeries([local, ...others], local.start);
  }

  /** Multi-node: this node's label series, for the other nodes' admin pages. */
  private publishHistory(): void {
    if (this.store.kind !== 'redis' || !this.history) return;
    const doc: PublishedHistory = { at: Date.now(), labels: this.history.all() };
    this.store.putDoc(HISTORY_DOCS, this.nodeId, doc, HISTORY_TTL_S).catch((e) => this.logger.debug({ err: oneLine(e) }, 'label history not published'));
  }

  /** The config in force now. */
  private get config(): Readonly<Config> {
    return this.live.view.current;
  }

  get registrarUrl(): string {
    return `${this.tls ? 'https' : 'http'}://${formatEndpoint(this.config.taasHost, this.registrar.port)}`;
  }

  get draining(): boolean {
    return this.drainingFlag;
  }

  private writeRuntime(): void {
    const info: RuntimeInfo = {
      pid: process.pid,
      nodeId: this.nodeId,
      engine: this.engine.name,
      store: this.store.kind,
      registrar: { host: this.config.taasHost, port: this.registrar.port, url: this.registrarUrl },
      admin: this.admin ? { host: this.config.adminHost, port: this.admin.port, url: this.admin.url } : null,
      startedAt: new Date().toISOString(),
    };
    writeRuntime(this.config.dataDir, info);
  }

  /**
   * Graceful drain: no new registrations (503 + Retry-After), established pairings finish
   * until drainTimeout, then whatever remains is closed.
   */
  async drain(): Promise<void> {
    if (this.drainingFlag) return;
    this.drainingFlag = true;
    this.link?.setDraining(true);
    this.relay.stopAccepting();
    this.logger.info({ active: this.relay.activePairings, drainTimeout: this.config.drainTimeout }, 'draining');
    // Waits on the relay's pairing-end events, bounded by drainTimeout.
    if (await this.relay.pairingsEnded(this.config.drainTimeout * 1000)) return;
    this.logger.warn({ active: this.relay.activePairings }, 'drain timeout reached; closing remaining pairings');
    this.relay.closeAll('drain');
    // The engine reports the closed pairings asynchronously: wait for their ends (bounded), so
    // that they are logged, counted and recorded before the store and the log are closed.
    await this.relay.pairingsEnded(DRAIN_CLOSE_WAIT_MS);
  }

  /**
   * SIGHUP: new config file values (certificate, limits, log level); a bad one is refused.
   * Restart-only keys (config/schema.ts) keep their start values; the log line names those
   * that changed, so the operator knows a restart is needed for them.
   */
  async reload(): Promise<boolean> {
    let next: Readonly<Config>;
    let ignored: string[];
    let tls: RelayTls | null;
    try {
      const { config: loaded } = await loadConfig({ configFile: this.configFile ?? undefined, flags: { dataDir: this.config.dataDir } });
      ({ config: next, ignored } = reloaded(this.config, loaded));
      tls = RelayTls.load(next, { generate: next.generateCert });
    } catch (e) {
      this.logger.error({ err: oneLine(e) }, 'reload refused: the new config is invalid; keeping the old one');
      return false;
    }
    const before = this.config.defaultPolicy;
    this.live.replace(next);
    this.logger.level = next.logLevel;
    // A new defaultPolicy applies to labels without their own: a newly denied address loses its pairings.
    if (JSON.stringify(before ?? null) !== JSON.stringify(next.defaultPolicy ?? null)) this.relay.closeDenied(this.relay.snapshot().map((s) => s.label));
    if (tls && this.tls) {
      this.tls = tls;
      // The ACME certificate, once there is one, stays on the registrar across reloads.
      const a = this.acme?.current;
      this.registrar.setTls(a ? RelayTls.fromMaterial(next, a, 'ACME') : tls);
    }
    this.logger.info({ tls: tls?.source ?? 'none', ignored }, 'configuration reloaded');
    return true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.keyRecheck) clearTimeout(this.keyRecheck);
    this.unwatch?.();
    await this.acme?.stop();
    await this.link?.close().catch(() => undefined);
    this.metrics?.close();
    this.history?.close();
    if (this.historyTimer) clearInterval(this.historyTimer);
    this.detachEventLog?.();
    await this.registrar.close();
    await this.admin?.close().catch(() => undefined);
    this.relay.closeAll('closed');
    await this.relay.close();
    await this.engine.shutdown();
    await this.store.close();
    removeRuntime(this.config.dataDir);
  }
}
