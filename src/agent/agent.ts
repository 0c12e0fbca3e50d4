/**
 * The hidden-server agent: keeps `pool` registrations open per label and forwards each paired
 * connection to the target. One loop starts all registrations: while no session token is held
 * it runs one at a time (one TOTP code per step), with a token up to `concurrency` at once, so
 * a burst of pairings is refilled in about one round trip. Backoff is agent-wide: a relay that
 * is down sees one agent retrying, not N slots.
 */
import { EventEmitter } from 'node:events';
import https from 'node:https';
import tls from 'node:tls';
import { TaasError } from '../errors.js';
import type { AgentFile, AgentServer, ProxyAddresses, ProxyVersion } from '../protocol/index.js';
import { formatProxyClient } from '../protocol/index.js';
import type { RelayEngine } from '../relay/engine.js';
import { StreamEngine } from '../relay/engines/stream.js';
import { Backoff } from './backoff.js';
import { CredentialState } from './credential-state.js';
import { Credentials, type Authorization } from './credentials.js';
import type { Logger } from './log.js';
import { RelayNodes } from './nodes.js';
import { LabelPool } from './pool.js';
import { register, type RegisterOutcome, type RegistrarTarget } from './registrar-client.js';
import { Responder, type Endpoint, type ResponderDone } from './responder.js';

export interface AgentOptions {
  file: AgentFile;
  target: Endpoint;
  /** Labels to register; each gets its own pool of `pool` registrations. */
  labels: string[];
  pool: number;
  tls: boolean;
  /** Accepted for compatibility, no effect: the target is connected when a client is paired, whatever it is. */
  serverFirst: boolean;
  /** Pass the pairing signal (PROXY header) on to the target in this version; null strips it. */
  proxyProtocol?: ProxyVersion | null;
  /** Moves octets in raw mode (the CLI picks splice where it loads); default: the stream engine. */
  engine?: RelayEngine;
  /** taas-agent --acme: the responders' TLS (certificate of the moment and ACME answers); implies TLS. */
  acmeTls?: () => { secureContext: tls.SecureContext } & Partial<tls.TlsOptions>;
  /** Idle registrations older than this are replaced (NAT mappings, dead pool members). */
  recycleMs: number;
  retryBaseMs: number;
  retryCapMs: number;
  /** Upper bound on a relay's Retry-After, so a bad value cannot park the agent for days. */
  retryAfterMaxMs: number;
  requestTimeoutMs: number;
  connectTimeoutMs: number;
  keepAliveMs: number;
  /** Registrations in flight at once once a session token is held. */
  concurrency: number;
  /** Where the session token and last spent step outlive the process (credential-state.ts); none: memory only. */
  stateFile?: string;
  log: Logger;
}

export const AGENT_DEFAULTS = {
  pool: 1,
  recycleMs: 600_000,
  retryBaseMs: 500,
  retryCapMs: 30_000,
  retryAfterMaxMs: 300_000,
  requestTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  // Below the common 60 s NAT UDP/TCP-idle floors of home routers, above chatty.
  keepAliveMs: 30_000,
  // Enough to refill a burst of pairings in about one round trip without hammering the registrar.
  concurrency: 4,
} as const;

/** A relay that closes a fresh registration this soon is refusing it, not recycling it. */
const EARLY_CLOSE_MS = 5_000;
/** Full jitter can draw ~0; this floor keeps a failing loop from ever running hot. */
const MIN_RETRY_MS = 50;

export interface AgentEvents {
  established: [label: string];
  paired: [label: string, client: ProxyAddresses | null];
  /** A registration's outcome: ok, refused-401, retry-429, unreachable, connect-failed, ... */
  registration: [label: string, result: string];
  /** An idle registration the relay or the network closed (not the agent): it is replaced. */
  lost: [label: string];
  'pairing-end': [label: string, done: ResponderDone];
  /** A failed attempt and the pause it caused. */
  failure: [info: { label: string; kind: string; status?: number; waitMs: number }];
}

export class Agent extends EventEmitter<AgentEvents> {
  readonly pools: LabelPool[];
  readonly nodes: RelayNodes;
  readonly engine: RelayEngine;
  private readonly credentials: Credentials;
  private readonly backoff: Backoff;
  private readonly secureContext: tls.SecureContext | null;
  private readonly abort = new AbortController();
  private gateUntil = 0;
  private wakeUp: (() => void) | null = null;
  /** A wake() that came while the loop was not paused: the next pause returns at once. */
  private woken = false;
  private readonly inflight = new Set<Promise<void>>();
  private readonly http: https.Agent;
  private loopDone: Promise<void> | null = null;
  private stopping = false;
  private readonly log: Logger;

  constructor(private readonly opts: AgentOptions) {
    super();
    this.log = opts.log;
    const { file } = opts;
    for (const l of opts.labels) {
      if (!file.labels.includes(l)) throw new TaasError('TAAS_LABEL_NOT_GRANTED', `label ${l} is not in the agent file (it lists ${file.labels.join(', ')})`);
    }
    this.pools = opts.labels.map((l) => new LabelPool(l, opts.pool));
    this.nodes = new RelayNodes(dedupe([file.server, ...(file.servers ?? [])]).map((s) => ({ host: s.host, port: s.port, servername: file.registrar })));
    this.engine = opts.engine ?? new StreamEngine();
    const state = opts.stateFile ? new CredentialState(opts.stateFile, (msg) => this.log.warn(msg)) : null;
    this.credentials = new Credentials(file, Date.now, state);
    this.backoff = new Backoff({ baseMs: opts.retryBaseMs, capMs: opts.retryCapMs });
    if (opts.tls && !file.tls) throw new TaasError('TAAS_FILE_UNREADABLE', 'the agent file has no "tls" certificate for --tls; write it again with a current `taas-server entries add`');
    this.secureContext = opts.tls && file.tls ? tls.createSecureContext({ cert: file.tls.cert, key: file.tls.key }) : null;
    this.http = new https.Agent({ keepAlive: true, maxSockets: Math.max(1, opts.concurrency) });
  }

  start(): void {
    this.loopDone ??= this.loop().catch((e) => {
      if (!this.stopping) this.log.error({ err: (e as Error).message }, 'registration loop stopped');
    });
  }

  snapshot() {
    return this.pools.map((p) => p.snapshot());
  }

  private wake(): void {
    if (this.wakeUp) this.wakeUp();
    else this.woken = true;
  }

  /** Sleeps until woken, `ms` passes, or the agent stops. */
  private pause(ms: number): Promise<void> {
    if (this.woken || this.stopping) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakeUp = null;
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, Math.min(ms, 2 ** 31 - 1)));
      this.wakeUp = done;
    });
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      const now = Date.now();
      for (const p of this.pools) p.retireOlderThan(this.opts.recycleMs, now);
      const pool = this.pools
        .filter((p) => p.deficit() > 0 && p.blockedUntil <= now)
        .sort((a, b) => b.deficit() - a.deficit())[0];
      if (!pool) {
        await this.pause(this.nextDeadline() - now);
        continue;
      }
      if (this.gateUntil > now) {
        await this.pause(this.gateUntil - now);
        continue;
      }
      const limit = this.credentials.hasUsableSession() ? Math.max(1, this.opts.concurrency) : 1;
      if (this.inflight.size >= limit) {
        await this.pause(Infinity); // a registration finishing wakes the loop
        continue;
      }
      const p: Promise<void> = this.registerOne(pool)
        .catch((e) => {
          this.log.error({ label: pool.label, err: (e as Error).message }, 'registration failed unexpectedly');
          this.fail(pool.label, 'internal', Math.max(MIN_RETRY_MS, this.backoff.next())); // never a hot loop
        })
        .finally(() => {
          this.inflight.delete(p);
          this.wake();
        });
      this.inflight.add(p);
    }
    await Promise.all(this.inflight);
  }

  /** The next moment something is due without an event: a label unblocks or a registration ages out. */
  private nextDeadline(): number {
    let t = Infinity;
    for (const p of this.pools) {
      t = Math.min(t, p.nextRetireAt(this.opts.recycleMs));
      if (p.deficit() > 0 && p.blockedUntil > Date.now()) t = Math.min(t, p.blockedUntil);
    }
    return t;
  }

  private async registerOne(pool: LabelPool): Promise<void> {
    pool.registering++;
    try {
      const auth = await this.credentials.next(this.abort.signal);
      const { outcome, node } = await this.registerAnywhere(pool.label, auth);
      this.emit('registration', pool.label, resultName(outcome));
      // A request that never left, or a certificate refused before it was sent, spent no code.
      if ((outcome.kind === 'unreachable' && outcome.unsent) || outcome.kind === 'untrusted') this.credentials.refund(auth);
      try {
        await this.act(pool, auth, outcome, node);
      } finally {
        if (node) this.nodes.inflight(node, -1);
      }
    } catch (e) {
      if (!this.stopping) throw e;
    } finally {
      pool.registering--;
    }
  }

  /**
   * To the answering node with the fewest of our idle responders (RelayNodes); when one is
   * unreachable it is set aside and the next ones are tried at once.
   */
  private async registerAnywhere(label: string, auth: Authorization): Promise<{ outcome: RegisterOutcome; node: RegistrarTarget | null }> {
    let outcome: RegisterOutcome = { kind: 'unreachable', reason: 'no server' };
    for (const target of this.nodes.order()) {
      this.nodes.inflight(target, 1);
      outcome = await register({
        target,
        label,
        authorization: auth.header,
        ca: this.opts.file.ca,
        timeoutMs: this.opts.requestTimeoutMs,
        signal: this.abort.signal,
        agent: this.http,
      }).catch((e: unknown) => {
        this.nodes.inflight(target, -1);
        throw e;
      });
      // The node that answered stays counted in flight until its responder is idle (registerOne).
      if (outcome.kind !== 'unreachable') {
        this.nodes.markUp(target);
        return { outcome, node: target };
      }
      this.nodes.inflight(target, -1);
      this.nodes.markDown(target, this.opts.retryCapMs);
      this.log.warn({ label, server: `${target.host}:${target.port}`, err: outcome.reason }, 'relay unreachable');
      // A TOTP code that may have reached a node is spent there (and, with a shared store,
      // everywhere): the next node gets a fresh credential after the backoff instead.
      if (auth.kind === 'totp' && !outcome.unsent) break;
    }
    return { outcome, node: null };
  }

  private async act(pool: LabelPool, auth: Authorization, o: RegisterOutcome, node: RegistrarTarget | null): Promise<void> {
    const label = pool.label;
    switch (o.kind) {
      case 'ok':
        if (o.session) this.credentials.acceptSession(o.session);
        return this.establish(pool, o.endpoint, o.cookie, node);
      case 'retry-after': {
        const ms = o.seconds === null ? this.backoff.next() : Math.min(this.opts.retryAfterMaxMs, o.seconds * 1000);
        this.log.info({ label, status: o.status, retryInMs: ms }, o.status === 429 ? 'relay asks to slow down' : 'relay temporarily unavailable');
        return this.fail(label, `status-${o.status}`, Math.max(MIN_RETRY_MS, ms), o.status);
      }
      case 'refused':
        if (o.status === 401 && auth.kind === 'session') {
          // The token expired or the relay's secret changed: authenticate with a fresh code next.
          this.credentials.dropSession();
          this.log.debug({ label }, 'session token refused; authenticating with a fresh code');
          return;
        }
        if (o.status === 404) {
          const ms = this.backoff.cap();
          pool.blockedUntil = Date.now() + ms;
          this.log.warn({ label, status: 404, retryInMs: ms }, `the relay refused label ${label} for ID ${this.opts.file.id} (404: not granted); retrying in ${Math.round(ms / 1000)} s`);
          this.emit('failure', { label, kind: 'refused', status: 404, waitMs: ms });
          return;
        }
        // After a refused code the next one must come from a later step: say the real wait.
        return this.fail(label, 'refused', Math.max(this.backoff.cap(), auth.kind === 'totp' ? this.credentials.msUntilFreshCode() : 0), o.status, o.status === 401 ? `the relay refused ID ${this.opts.file.id} (401: unknown ID, wrong or reused code, or a clock off by more than a step)` : `the relay refused the registration (${o.status}: ${o.reason})`);
      case 'untrusted':
        return this.fail(label, 'untrusted', this.backoff.cap(), undefined, `the registrar's certificate does not verify against the CA in the agent file (${o.reason})`);
      case 'unreachable':
      case 'bad-response':
        return this.fail(label, o.kind, Math.max(MIN_RETRY_MS, this.backoff.next()), undefined, o.kind === 'bad-response' ? `bad answer from the registrar: ${o.reason}` : undefined);
    }
  }

  /** Pauses all registrations; a failure during an existing pause does not lengthen it. */
  private fail(label: string, kind: string, waitMs: number, status?: number, line?: string): void {
    const now = Date.now();
    if (this.gateUntil > now) return;
    this.gateUntil = now + waitMs;
    if (line) this.log.warn({ label, retryInMs: waitMs }, `${line}; retrying in ${(waitMs / 1000).toFixed(1)} s`);
    this.emit('failure', { label, kind, ...(status !== undefined ? { status } : {}), waitMs });
  }

  /** TLS for the next responder: --acme's certificate of the moment, --tls's, or none. */
  private responderTls(): { tls: tls.SecureContext | null; tlsOptions?: Partial<tls.TlsOptions> } {
    if (!this.opts.acmeTls) return { tls: this.secureContext };
    const { secureContext, ...tlsOptions } = this.opts.acmeTls();
    return { tls: secureContext, tlsOptions };
  }

  private async establish(pool: LabelPool, relay: Endpoint, cookie: string | null, node: RegistrarTarget | null): Promise<void> {
    const label = pool.label;
    const r = new Responder({
      label,
      relay,
      cookie,
      target: this.opts.target,
      ...this.responderTls(),
      proxyProtocol: this.opts.proxyProtocol ?? null,
      engine: this.engine,
      connectTimeoutMs: this.opts.connectTimeoutMs,
      keepAliveMs: this.opts.keepAliveMs,
      log: this.log,
    });
    try {
      await r.start();
    } catch (e) {
      r.close();
      this.emit('registration', label, 'connect-failed');
      return this.fail(label, 'connect', Math.max(MIN_RETRY_MS, this.backoff.next()), undefined, `cannot connect to the allocated port (${(e as Error).message})`);
    }
    if (this.stopping) return r.close();
    pool.idle.add(r);
    if (node) this.nodes.count(node, 1);
    let counted = node !== null;
    const uncount = () => {
      if (counted && node) this.nodes.count(node, -1);
      counted = false;
    };
    pool.closeOneRetiring();
    r.once('paired', (client: ProxyAddresses | null) => {
      uncount();
      pool.markPaired(r);
      this.backoff.reset();
      this.log.info({ label, client: formatProxyClient(client), idleMs: Date.now() - r.idleSince, idle: pool.idle.size }, 'paired with a mobile client');
      this.emit('paired', label, client);
      this.wake();
    });
    r.once('done', (d: ResponderDone) => {
      uncount();
      this.onDone(pool, r, d);
    });
    this.log.info({ label, relay: `${relay.host}:${relay.port}`, idle: pool.idle.size }, 'registration established');
    this.emit('established', label);
  }

  private onDone(pool: LabelPool, r: Responder, d: ResponderDone): void {
    pool.remove(r);
    if (d.paired) {
      this.emit('pairing-end', pool.label, d);
      this.log.info({ label: pool.label, client: formatProxyClient(d.client), clientToTarget: d.bytes?.aToB ?? 0, targetToClient: d.bytes?.bToA ?? 0, err: d.bytes?.error?.message, idle: pool.idle.size }, 'pairing ended');
    } else if (d.byAgent) {
      this.log.debug({ label: pool.label, idleMs: d.idleMs, idle: pool.idle.size }, 'idle registration recycled');
    } else if (!this.stopping) {
      this.log.info({ label: pool.label, idleMs: d.idleMs, idle: pool.idle.size }, 'registration closed while idle');
      this.emit('lost', pool.label);
      if (d.idleMs < EARLY_CLOSE_MS) this.fail(pool.label, 'early-close', Math.max(MIN_RETRY_MS, this.backoff.next()));
    }
    this.wake();
  }

  /**
   * Stops registering, closes idle registrations at once and gives pairings in progress up to
   * `drainMs` to finish before closing them.
   */
  async stop(drainMs = 0): Promise<void> {
    this.stopping = true;
    this.abort.abort();
    this.wake();
    await this.loopDone;
    this.http.destroy();
    const paired: Responder[] = [];
    for (const p of this.pools) {
      for (const r of [...p.idle, ...p.retiring]) r.close();
      paired.push(...p.paired);
    }
    if (paired.length > 0 && drainMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(paired.map((r) => new Promise((res) => (r.state === 'closed' ? res(null) : r.once('done', res))))),
        new Promise((res) => (timer = setTimeout(res, drainMs))),
      ]);
      clearTimeout(timer);
    }
    for (const r of paired) r.close();
    await this.engine.shutdown();
  }

  /** One line of state for the log (SIGUSR1): pools, nodes, engine ('pipe': --tls copies in JavaScript). */
  status(): { engine: string; stopping: boolean; pools: ReturnType<LabelPool['snapshot']>[]; nodes: ReturnType<RelayNodes['snapshot']> } {
    return { engine: this.opts.tls ? 'pipe' : this.engine.name, stopping: this.stopping, pools: this.snapshot(), nodes: this.nodes.snapshot() };
  }
}

/** A registration outcome as a metric label. */
function resultName(o: RegisterOutcome): string {
  switch (o.kind) {
    case 'ok':
      return 'ok';
    case 'retry-after':
      return `retry-${o.status}`;
    case 'refused':
      return `refused-${o.status}`;
    default:
      return o.kind;
  }
}

function dedupe(list: AgentServer[]): AgentServer[] {
  const seen = new Set<string>();
  return list.filter((s) => {
    const k = `${s.host}|${s.port}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
