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
import { descriptorPassing } from './relay/engines/socket-options.js';
import { HandoverPoint } from './handover/old-side.js';
import { takeOverOrDrain, type Adopted } from './handover/start.js';
import type { DescriptorPassing } from './relay/engines/socket-options.js';
import type { ListenerState, RelayState } from './protocol/handover.js';

/** TCP sockets this process still has open (Linux: /proc/self/fd), or null where unknown. */
function openSockets(): number | null {
  try {
    const tcp = new Set<string>();
    for (const f of ['/proc/self/net/tcp', '/proc/self/net/tcp6']) {
      for (const line of fs.readFileSync(f, 'utf8').split('\n').slice(1)) {
        const inode = line.trim().split(/\s+/)[9];
        if (inode && inode !== '0') tcp.add(inode);
      }
    }
    let n = 0;
    for (const fd of fs.readdirSync('/proc/self/fd')) {
      let link = '';
      try {
        link = fs.readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        continue; // closed meanwhile (the directory's own descriptor)
      }
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m && tcp.has(m[1]!)) n++;
    }
    return n;
  } catch {
    return null;
  }
}

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
  handOut?(dup: (fd: number) => number): Promise<number>;
  /** A failed hand-over: listening again on this descriptor (this daemon's own copy). */
  resume?(fd: number): Promise<void>;
}

/** How the daemon starts: fresh, or taking over from the running one (`taas-server restart`). */
export interface StartOptions {
  /** Take everything over from the daemon running on this data dir (issue 16). */
  takeOver?: boolean;
  /** After a hand-over this daemon has finished what it kept: its owner exits with `code`. */
  onHandedOver?: (code: number) => void;
  /** What the take-over did, for `restart` to print (one line). */
  onTakenOver?: (note: string) => void;
}

/** One of the daemon's own listeners handed to the next daemon at a restart, by name. */
interface OwnListener {
  name: string;
  handOut(dup: (fd: number) => number): Promise<number>;
}

/** Store documents of each node's label series (multi-node), refreshed this often, kept this long. */
const HISTORY_DOCS = 'label-history';
const HISTORY_PUBLISH_MS = 15_000;
const HISTORY_TTL_S = 120;

interface PublishedHistory {
  at: number;
  labels: Record<string, LabelSeries>;
}

/** label → the policy its entry sets (labels the entry holds only). */
async function labelPolicies(store: ResilientStore): Promise<Map<string, LabelPolicy>> {
  const policies = new Map<string, LabelPolicy>();
  for (const e of await store.listEntries()) {
    for (const [l, p] of Object.entries(e.policies ?? {})) if (e.labels.includes(l)) policies.set(l, p);
  }
  return policies;
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
  private handoverPoint: HandoverPoint | null = null;
  private startOpts: StartOptions = {};

  /**
   * `onFatal` is told when the daemon finds after start that it must not run (a secret key
   * file that is not the store's, seen once an unreachable store answers): its owner stops it.
   */
  static async start(config: Readonly<Config>, configFile: string | null, logger: Logger, onFatal?: (e: TaasError) => void, opts: StartOptions = {}): Promise<Daemon> {
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
    // Restart: everything above is checked (config, store, engine) before anything is handed over.
    const adopted: Adopted | null = opts.takeOver ? await takeOverOrDrain(config, logger, opts.onTakenOver) : null;
    try {
      return await Daemon.build(config, configFile, logger, onFatal, opts, { tls, store, box, keyChecked, engine }, adopted);
    } catch (e) {
      adopted?.session.failed(e);
      throw e;
    }
  }

  private static async build(
    config: Readonly<Config>,
    configFile: string | null,
    logger: Logger,
    onFatal: ((e: TaasError) => void) | undefined,
    opts: StartOptions,
    checked: { tls: RelayTls | null; store: ResilientStore; box: SecretBox; keyChecked: boolean; engine: RelayEngine },
    adopted: Adopted | null,
  ): Promise<Daemon> {
    const { tls, store, box, keyChecked, engine } = checked;
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
    // The relay's state first, so that a 307 answered by the adopted registrar finds its responders.
    const t0 = Date.now();
    if (adopted) {
      // The labels' policies before their pairings are taken in: a handed-over pairing of a label
      // with a bandwidth goes on limited by it (this daemon's buckets; syncFixed keeps them current).
      relay.setPolicies(await labelPolicies(store).catch((e) => (logger.warn({ err: oneLine(e) }, 'label policies not read before the take-over: handed-over pairings unlimited until the entries are read'), new Map())));
      await relay.adopt(adopted.received.relay, adopted.received.fds, adopted.ops);
    }
    const t1 = Date.now();
    await registrar.listen(adopted?.received.listeners.get('registrar'));
    const entries = new EntryService(store, {
      config: view,
      tls: () => d?.tls ?? tls,
      // Read at each use: a reloaded advertiseHost reaches the agent files made from then on.
      registrarEndpoint: () => ({ host: nodeHost(view.current), port: registrar.port }),
      peers: async () => (d?.link ? d.link.peers() : []),
    });
    d = new Daemon(live, configFile, logger, store, engine, relay, auth, routes, registrar, entries, tls, nodeId);
    d.startOpts = opts;
    const t2 = Date.now();
    if (acme) await d.startAcme(acme);
    // The old daemon is let go once this one relays and its registrar listens: the admin server
    // (a second or so to build) starts after, its connections waiting in the handed backlog.
    const owned = (): void => {
      if (!adopted) return;
      adopted.session.taken();
      const r = adopted.received.relay;
      logger.info({ from: adopted.session.oldPid, pairings: r.pairings.length, idle: r.idle.length, adoptMs: t1 - t0, wireMs: Date.now() - t2 }, 'took over from the previous daemon');
    };
    await d.wire(adopted?.received.listeners.get('admin'), owned);
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

  private async wire(adminFd?: number, owned?: () => void): Promise<void> {
    // During a store outage the record waits in the store's outbox: only a fault is logged here.
    this.relay.on('pairing-end', (rec) => {
      this.store.addPairing(rec).catch((e) => this.logger.warn({ err: oneLine(e) }, 'pairing not recorded'));
    });
    const syncFixed = () => this.syncFixed();
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
    owned?.();
    this.admin = await this.startAdmin(adminFd);
    this.writeRuntime();
    await this.openHandoverPoint();
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

  /** Fixed client ports and revocations follow the entries (at start and on every store change). */
  private async syncFixed(): Promise<void> {
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
  }

  private async startAdmin(listenFd?: number): Promise<AdminHandle | null> {
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
        listenFd,
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

  // ── restart: the hand-over to the next daemon (issue 16, src/handover/) ───────────

  /** The daemon's own listeners a restart hands over; a part that adds a listener adds it here. */
  private ownListeners(): OwnListener[] {
    const out: OwnListener[] = [{ name: 'registrar', handOut: (dup) => this.registrar.handOut(dup) }];
    const admin = this.admin;
    if (admin?.handOut) out.push({ name: 'admin', handOut: (dup) => admin.handOut!(dup) });
    return out;
  }

  private async openHandoverPoint(): Promise<void> {
    const { io, why } = descriptorPassing();
    if (!io) {
      this.logger.warn(`hand-over unavailable (${why}): taas-server restart falls back to a drain`);
      return;
    }
    try {
      this.handoverPoint = await HandoverPoint.open(this.config.dataDir, io, {
        relay: this.relay,
        logger: this.logger,
        listeners: async (dup) => {
          // This node stops speaking for itself: the next daemon joins the others in its place.
          // Not draining: requests in progress here are answered as usual (their state is handed over).
          this.unwatch?.();
          this.unwatch = null;
          await this.link?.close().catch(() => undefined);
          this.link = null;
          const out: Array<{ name: string; fd: number }> = [];
          for (const l of this.ownListeners()) {
            const fd = await l.handOut(dup);
            if (fd >= 0) out.push({ name: l.name, fd });
          }
          return out;
        },
        handedOver: (kept) => void this.afterHandOut(kept, 0),
        takeBack: (state, listeners, fds) => this.takeBack(state, listeners, fds, io),
      });
    } catch (e) {
      this.logger.warn({ err: oneLine(e) }, 'hand-over socket not opened: taas-server restart falls back to a drain');
    }
  }

  /**
   * The new daemon failed before it took ownership: everything handed out is taken back from
   * this daemon's own copies — the relay's state, the registrar and admin listeners — and the
   * node joins the others again, as if no restart had been asked for.
   */
  private async takeBack(state: RelayState, listeners: ListenerState[], fds: number[], io: DescriptorPassing): Promise<void> {
    await this.relay.adopt(state, fds, { dup: (fd) => io.dupFd(fd), close: (fd) => io.closeFd(fd) });
    const byName = new Map(listeners.map((l) => [l.name, fds[l.fd]!]));
    const reg = byName.get('registrar');
    if (reg !== undefined) await this.registrar.listen(reg);
    const adm = byName.get('admin');
    if (adm !== undefined && this.admin?.resume) await this.admin.resume(adm);
    this.link = await NodeLink.open({ store: this.store.inner, relay: this.relay, config: this.live.view, logger: this.logger, nodeId: this.nodeId, registrarPort: this.registrar.port });
    this.unwatch = this.store.watch(() => void this.syncFixed());
    await this.syncFixed();
    this.handoverPoint = null;
    await this.openHandoverPoint();
  }

  /** Handed over: pairings the engine kept relay on here (up to drainTimeout), then this daemon stops. */
  private async afterHandOut(kept: number, code: number): Promise<void> {
    if (kept > 0) {
      this.logger.info({ kept, drainTimeout: this.config.drainTimeout }, 'pairings the engine could not hand over relay on here until they end');
      if (!(await this.relay.pairingsEnded(this.config.drainTimeout * 1000))) {
        this.relay.closeAll('drain');
        await this.relay.pairingsEnded(DRAIN_CLOSE_WAIT_MS);
      }
    }
    await this.stop().catch((e) => this.logger.error({ err: oneLine(e) }, 'error while stopping after the hand-over'));
    // Every relay socket is the next daemon's: none may be left open here (checked by test/ops).
    this.logger.info({ socketsOpen: openSockets() }, 'stopped after the hand-over');
    this.startOpts.onHandedOver?.(code);
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
    this.handoverPoint?.close();
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
