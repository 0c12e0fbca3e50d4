/**
 * Composition root: config → store → auth → relay → registrar → admin. Also the daemon's
 * life cycle: drain on SIGTERM, reload on SIGHUP, and the runtime file (`daemon.json` in the
 * data dir) through which the CLI and tests find a running daemon's ports.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from './config/schema.js';
import { loadConfig } from './config/load.js';
import { TaasError, oneLine } from './errors.js';
import { Authenticator } from './auth/guard.js';
import { openSecretBox, openStore } from './store/open.js';
import { EntryService } from './store/entries.js';
import { ResilientStore } from './store/resilient-store.js';
import { RelayTls } from './tls/relay-tls.js';
import { Relay } from './relay/relay.js';
import { selectEngine } from './relay/engines/select.js';
import type { RelayEngine } from './relay/engine.js';
import { RegistrarRoutes } from './registrar/routes.js';
import { RegistrarServer } from './registrar/server.js';
import { writeFileAtomic } from './store/atomic-file.js';
import { NodeLink, defaultNodeId } from './cluster/node-link.js';
import { nodeHost } from './protocol/endpoint.js';
import { createMetrics, type Metrics } from './observe/metrics.js';
import { attachEventLog } from './observe/event-log.js';

export interface RuntimeInfo {
  pid: number;
  nodeId: string;
  engine: string;
  store: string;
  registrar: { host: string; port: number; url: string };
  admin: { host: string; port: number; url: string } | null;
  startedAt: string;
}

/** Documents read at start, so that they serve through a store outage: API keys (a scrape of /metrics needs one). */
const PRELOADED_DOCS = ['apikeys'];

/** After drainTimeout, how long closed pairings get to report their end (the engine is quick). */
const DRAIN_CLOSE_WAIT_MS = 2000;

export function runtimeFile(dataDir: string): string {
  return path.resolve(dataDir, 'daemon.json');
}

/** The running daemon of a data dir, if its runtime file names a live process. */
export function readRuntime(dataDir: string): RuntimeInfo | null {
  try {
    const info = JSON.parse(fs.readFileSync(runtimeFile(dataDir), 'utf8')) as RuntimeInfo;
    process.kill(info.pid, 0);
    return info;
  } catch {
    return null;
  }
}

export interface AdminHandle {
  url: string;
  port: number;
  close(): Promise<void>;
}

export class Daemon {
  private drainingFlag = false;
  private admin: AdminHandle | null = null;
  private unwatch: (() => void) | null = null;
  private metrics: Metrics | null = null;
  private detachEventLog: (() => void) | null = null;
  private link: NodeLink | null = null;

  private constructor(
    private config: Readonly<Config>,
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

  static async start(config: Readonly<Config>, configFile: string | null, logger: Logger): Promise<Daemon> {
    fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    const tls = RelayTls.load(config, { generate: config.generateCert });
    const box = openSecretBox(config);
    // The daemon's store serves from what it knows through an outage of the real one (issue 17).
    const store = await ResilientStore.open(await openStore(config, box, logger), logger, { preloadDocs: PRELOADED_DOCS });
    const { engine, note } = await selectEngine(config.relayEngine, logger);
    if (note) logger.warn(note);
    const nodeId = config.nodeId ?? defaultNodeId(config);
    const relay = new Relay({ config, engine, logger, nodeId });
    const auth = new Authenticator(store, config, logger);
    let d: Daemon | null = null;
    const routes = new RegistrarRoutes({
      config: () => d?.config ?? config,
      store,
      auth,
      relay,
      logger,
      // HTTPS or HTTP is fixed for the daemon's life: a reload swaps certificates, never the scheme.
      tls: () => tls !== null,
      draining: () => d?.drainingFlag ?? false,
      elsewhere: async (label, client) => (d?.link ? d.link.elsewhere(label, client) : null),
      registerElsewhere: async () => (d?.link ? d.link.registerElsewhere(tls !== null) : null),
    });
    const registrar = new RegistrarServer(config, tls, routes, logger);
    await registrar.listen();
    const entries = new EntryService(store, {
      config,
      tls,
      registrarEndpoint: () => ({ host: nodeHost(config), port: registrar.port }),
      peers: async () => (d?.link ? d.link.peers() : []),
    });
    d = new Daemon(config, configFile, logger, store, engine, relay, auth, routes, registrar, entries, tls, nodeId);
    await d.wire();
    return d;
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
        for (const e of await this.store.listEntries()) {
          for (const [l, p] of Object.entries(e.clientPorts)) map.set(l, p);
          for (const l of e.labels) owners.set(l, e.id);
        }
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
      config: () => this.config,
      draining: () => this.drainingFlag,
    });
    this.detachEventLog = attachEventLog(this.relay, this.routes, this.logger);
    // The directory talks to Redis itself: its view of other nodes is no entry to cache.
    this.link = await NodeLink.open({ store: this.store.inner, relay: this.relay, config: () => this.config, logger: this.logger, nodeId: this.nodeId, registrarPort: this.registrar.port });
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
        config: this.config,
        store: this.store,
        entries: this.entries,
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

  get registrarUrl(): string {
    const host = this.config.taasHost.includes(':') ? `[${this.config.taasHost}]` : this.config.taasHost;
    return `${this.tls ? 'https' : 'http'}://${host}:${this.registrar.port}`;
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
    writeFileAtomic(runtimeFile(this.config.dataDir), JSON.stringify(info, null, 2) + '\n', 0o644);
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
    const deadline = Date.now() + this.config.drainTimeout * 1000;
    this.logger.info({ active: this.relay.activePairings, drainTimeout: this.config.drainTimeout }, 'draining');
    await new Promise<void>((resolve) => {
      const tick = () => {
        if (this.relay.activePairings === 0 || Date.now() >= deadline) return resolve();
        setTimeout(tick, 100).unref();
      };
      tick();
    });
    if (this.relay.activePairings === 0) return;
    this.logger.warn({ active: this.relay.activePairings }, 'drain timeout reached; closing remaining pairings');
    this.relay.closeAll('drain');
    // The engine reports the closed pairings asynchronously: wait for their ends (bounded), so
    // that they are logged, counted and recorded before the store and the log are closed.
    const closeBy = Date.now() + DRAIN_CLOSE_WAIT_MS;
    while (this.relay.activePairings > 0 && Date.now() < closeBy) await new Promise((r) => setTimeout(r, 10));
  }

  /** SIGHUP: new config file values (certificate, limits, log level); a bad one is refused. */
  async reload(): Promise<boolean> {
    let next: Readonly<Config>;
    let tls: RelayTls | null;
    try {
      ({ config: next } = await loadConfig({ configFile: this.configFile ?? undefined, flags: { dataDir: this.config.dataDir } }));
      tls = RelayTls.load(next, { generate: next.generateCert });
    } catch (e) {
      this.logger.error({ err: oneLine(e) }, 'reload refused: the new config is invalid; keeping the old one');
      return false;
    }
    this.config = next;
    this.logger.level = next.logLevel;
    this.auth.setConfig(next);
    this.registrar.setConfig(next);
    this.relay.setConfig(next);
    if (tls && this.tls) {
      this.tls = tls;
      this.registrar.setTls(tls);
    }
    this.logger.info({ tls: tls?.source ?? 'none' }, 'configuration reloaded');
    return true;
  }

  async stop(): Promise<void> {
    this.unwatch?.();
    await this.link?.close().catch(() => undefined);
    this.metrics?.close();
    this.detachEventLog?.();
    await this.registrar.close();
    await this.admin?.close().catch(() => undefined);
    this.relay.closeAll('closed');
    await this.relay.close();
    await this.engine.shutdown();
    await this.store.close();
    try {
      const info = JSON.parse(fs.readFileSync(runtimeFile(this.config.dataDir), 'utf8')) as RuntimeInfo;
      if (info.pid === process.pid) fs.rmSync(runtimeFile(this.config.dataDir), { force: true });
    } catch {
      /* already gone */
    }
  }
}
