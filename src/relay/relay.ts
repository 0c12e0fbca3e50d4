/**
 * The Relay: rendezvous ports, responder pools and pairing. The registrar calls `allocate` for
 * an authenticated registration and `clientPort` for a mobile client's request; the relay
 * opens the ports, takes in responders and clients, pairs them (FIFO both sides) and hands
 * each pairing to the relay engine. It emits events for metrics and logs (see RelayEvents).
 */
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { TaasError } from '../errors.js';
import { newCorrelationId, withCorrelation } from '../observe/correlation.js';
import type { PairingRecord } from '../store/types.js';
import { formatPeer, normaliseAddress } from './address.js';
import { ClientPort } from './client-port.js';
import { ConnLimit } from './conn-limit.js';
import { WAITING_CLIENT_BUFFER_BYTES } from './constants.js';
import { LogBudget } from '../observe/log-budget.js';
import type { PairingResult, RelayEngine } from './engine.js';
import { setTcpUserTimeout } from './engines/splice.js';
import { HeldSocket } from './held-socket.js';
import { PathBook } from './path-book.js';
import { LabelPool, type Waiter } from './pool.js';
import { LivePairing } from './live-pairing.js';
import { PortAllocator } from './ports.js';
import { Registration, type RefusalWhy } from './registration.js';
import type { LabelLiveState } from '../store/directory.js';

export interface RelayDeps {
  config: Readonly<Config>;
  engine: RelayEngine;
  logger: Logger;
  nodeId?: string;
}

/** One label's live state on this node; the same shape the directory shares between nodes. */
export type LabelState = LabelLiveState;

export type ClientRefusal = 'no-responder' | 'queue-full' | 'timeout' | 'conn-limit' | 'closing';

/** Payloads of the events the Relay emits. */
export interface RelayEvents {
  allocated: { id: string; label: string; port: number; remoteAddress: string };
  'responder-ready': { label: string };
  'responder-refused': { label: string; port: number; remoteAddress: string; why: RefusalWhy };
  /** An idle responder found dead when it was about to be paired, and replaced (issue 7). */
  'responder-dead': { label: string };
  'registration-expired': { label: string; port: number };
  paired: { label: string; waitMs: number };
  'pool-empty': { label: string };
  'pairing-end': PairingRecord;
  'client-refused': { label: string; why: ClientRefusal };
}

/** Seconds libuv's keepalive probes take to give up (10 probes, 1 s apart) after the idle time. */
const KEEPALIVE_PROBES_S = 10;

export class Relay extends EventEmitter {
  private config: Readonly<Config>;
  private readonly engine: RelayEngine;
  private readonly logger: Logger;
  private readonly nodeId: string | undefined;
  private readonly allocator: PortAllocator;
  private readonly connLimit: ConnLimit;
  private readonly pools = new Map<string, LabelPool>();
  private readonly registrations = new Set<Registration>();
  private readonly pendingById = new Map<string, number>();
  private readonly paths = new PathBook();
  private readonly fixed = new Map<string, ClientPort>();
  /** The entry ID each idle responder registered with. */
  private readonly owners = new WeakMap<HeldSocket, string>();
  /** Label → owning entry ID, as last given to dropRevoked. */
  private labelOwners: ReadonlyMap<string, string> = new Map();
  /** `label ID` pairs that held once and hold no more (entry removed, label moved). */
  private readonly revoked = new Set<string>();
  private fixedUpdate: Promise<void> = Promise.resolve();
  /** Refused mobile clients logged at info: 10 per label and minute. */
  private readonly refusalLog = new LogBudget(10, 60_000);
  private accepting = true;
  private closed = false;

  constructor(deps: RelayDeps) {
    super();
    this.config = deps.config;
    this.engine = deps.engine;
    this.logger = deps.logger;
    this.nodeId = deps.nodeId ?? deps.config.nodeId;
    // Limits read through `this.config` at each use, so that setConfig (SIGHUP) applies them.
    this.allocator = new PortAllocator(() => this.config.portRange, this.config.taasHost, () => this.config.maxPorts);
    this.connLimit = new ConnLimit(() => this.config.maxConnsPerAddress);
  }

  /**
   * SIGHUP (issue 7): the limits and timeouts read per use (maxIdlePerLabel, maxPendingPerId,
   * maxWaitingClients, clientWaitTimeout, clientPortIdle, registrationTimeout, idleBufferBytes,
   * pairingIdleTimeout) apply from now on to new registrations, clients and pairings;
   * established ones keep what they started with. portRange, maxPorts and maxConnsPerAddress
   * apply to the next port opened / connection accepted (ports already open stay open);
   * taasHost needs a restart.
   */
  setConfig(config: Readonly<Config>): void {
    this.config = config;
  }

  /**
   * Events are emitted from socket and timer callbacks: a listener that throws (metrics, logs)
   * must not become an uncaught exception there, so it is logged and the relay carries on.
   */
  override emit<K extends keyof RelayEvents>(event: K, payload: RelayEvents[K]): boolean {
    try {
      return super.emit(event, payload);
    } catch (e) {
      this.logger.error({ event, err: (e as Error)?.message }, 'a relay event listener threw');
      return true;
    }
  }

  // ── registrations ──────────────────────────────────────────────────────────

  async allocate(reg: { id: string; label: string; remoteAddress: string; cookie: string }): Promise<{ port: number }> {
    if (!this.accepting || this.closed) throw new TaasError('TAAS_DRAINING', undefined, { retryAfter: 5 });
    const pendingForId = this.pendingById.get(reg.id) ?? 0;
    if (pendingForId >= this.config.maxPendingPerId) {
      throw new TaasError('TAAS_LIMIT_REACHED', `ID has ${pendingForId} registrations pending (maxPendingPerId)`, { retryAfter: 5 });
    }
    const pool = this.pool(reg.label);
    if (pool.idle.length + pool.pending >= this.config.maxIdlePerLabel) {
      throw new TaasError('TAAS_LIMIT_REACHED', `label ${reg.label} has ${this.config.maxIdlePerLabel} responders idle or pending (maxIdlePerLabel)`, { retryAfter: 5 });
    }
    // Counted before the await so that concurrent allocations see each other.
    pool.pending++;
    this.pendingById.set(reg.id, pendingForId + 1);
    let settled = false;
    const settle = (): void => {
      if (settled) return;
      settled = true;
      pool.pending--;
      const n = (this.pendingById.get(reg.id) ?? 1) - 1;
      if (n <= 0) this.pendingById.delete(reg.id);
      else this.pendingById.set(reg.id, n);
      this.registrations.delete(r);
    };
    const r: Registration = new Registration(reg, this.config, this.allocator, this.connLimit, this.logger, {
      accepted: (socket, head, cookieless) => {
        settle();
        if (cookieless) this.logger.info({ label: reg.label, port: r.port }, 'original-protocol responder accepted without cookie');
        this.addResponder(reg.label, socket, head, reg.id);
      },
      refused: (why, remoteAddress) => this.emit('responder-refused', { label: reg.label, port: r.port, remoteAddress, why }),
      expired: () => {
        settle();
        this.logger.info({ label: reg.label, port: r.port }, 'registration expired');
        this.emit('registration-expired', { label: reg.label, port: r.port });
        this.forgetIfEmpty(pool);
      },
    });
    this.registrations.add(r);
    let port: number;
    try {
      port = await r.start();
    } catch (e) {
      settle();
      this.forgetIfEmpty(pool);
      throw e;
    }
    this.emit('allocated', { id: reg.id, label: reg.label, port, remoteAddress: normaliseAddress(reg.remoteAddress) });
    return { port };
  }

  private addResponder(label: string, socket: net.Socket, head: Buffer | undefined, id: string): void {
    socket.on('error', () => {}); // until HeldSocket takes over below; destroy() otherwise
    const pool = this.pool(label);
    if (this.closed) return void socket.destroy();
    // Registered before its entry was removed (or its label moved): it must not serve clients.
    if (this.revoked.has(`${label} ${id}`)) {
      this.logger.info({ label }, 'responder closed: its entry no longer holds the label');
      socket.destroy();
      this.forgetIfEmpty(pool);
      return;
    }
    // A hidden server that vanished silently (NAT mapping dropped, host gone) is found by TCP
    // keepalive: libuv probes every 1 s, 10 times, after responderKeepalive s of silence.
    // TCP_USER_TIMEOUT (native addon, where built) gives the same bound to unacknowledged data,
    // so a client paired with such a responder before it was found is closed within it too,
    // rather than after ~15 minutes of retransmissions.
    socket.setKeepAlive(true, this.config.responderKeepalive * 1000);
    setTcpUserTimeout(socket, (this.config.responderKeepalive + KEEPALIVE_PROBES_S) * 1000);
    const held = new HeldSocket(socket, head, this.config.idleBufferBytes, (h) => {
      pool.removeIdle(h);
      this.logger.debug({ label }, 'idle responder left the pool');
      this.forgetIfEmpty(pool);
    });
    this.owners.set(held, id);
    if (pool.idle.length >= this.config.maxIdlePerLabel) {
      held.destroy();
      this.logger.info({ label }, 'idle responder closed: maxIdlePerLabel reached');
      return;
    }
    pool.idle.push(held);
    this.emit('responder-ready', { label });
    this.serve(pool);
  }

  // ── mobile clients ─────────────────────────────────────────────────────────

  async clientPort(label: string, req: { remoteAddress: string; path: string }): Promise<number | null> {
    if (this.closed) return null;
    const pool = this.pools.get(label);
    const fixed = this.fixed.get(label);
    if (!pool || pool.responders === 0) return null;
    this.paths.record(label, req.remoteAddress, req.path);
    if (fixed) {
      fixed.touch();
      return fixed.port;
    }
    if (pool.clientPort) {
      pool.clientPort.touch();
      return pool.clientPort.port;
    }
    if (pool.opening) return pool.opening;
    const cp = new ClientPort(label, false, this.config.clientPortIdle * 1000, this.allocator, this.logger, {
      connection: (s) => this.takeClient(label, s),
      busy: () => pool.active + pool.verifying + pool.waiting.length > 0,
      idle: () => {
        if (pool.clientPort === cp) pool.clientPort = null;
        void cp.close();
        this.logger.debug({ label, port: cp.port }, 'client port closed after clientPortIdle');
        this.forgetIfEmpty(pool);
      },
    });
    pool.opening = cp.open();
    try {
      const port = await pool.opening;
      pool.clientPort = cp;
      if (this.closed) void cp.close();
      return port;
    } finally {
      pool.opening = null;
    }
  }

  private takeClient(label: string, socket: net.Socket): void {
    // Each client connection gets its own correlation id for its log lines (issue 7).
    withCorrelation(newCorrelationId('c'), () => this.admitClient(label, socket));
  }

  private admitClient(label: string, socket: net.Socket): void {
    socket.on('error', () => {}); // until HeldSocket takes over (same tick); destroy() below otherwise
    if (!this.connLimit.admit(socket)) {
      socket.destroy();
      return this.refuseClient(label, 'conn-limit');
    }
    if (this.closed) {
      socket.destroy();
      return this.refuseClient(label, 'closing');
    }
    const pool = this.pool(label);
    if (pool.idle.length === 0) this.emit('pool-empty', { label });
    if (pool.responders === 0) {
      socket.destroy();
      this.forgetIfEmpty(pool);
      return this.refuseClient(label, 'no-responder');
    }
    // Every client passes through the queue, but only those beyond the idle responders wait.
    const wouldWait = pool.waiting.length + 1 - pool.idle.length;
    const noWait = this.config.clientWaitTimeout === 0 && wouldWait > 0;
    if (wouldWait > this.config.maxWaitingClients || noWait) {
      socket.destroy();
      return this.refuseClient(label, noWait ? 'timeout' : 'queue-full');
    }
    const held = new HeldSocket(
      socket,
      undefined,
      WAITING_CLIENT_BUFFER_BYTES,
      (h) => {
        if (pool.removeWaiter(h)) this.logger.debug({ label }, 'waiting client left');
        this.forgetIfEmpty(pool);
      },
      true,
    );
    const now = Date.now();
    const w: Waiter = { held, arrived: now, deadline: now + this.config.clientWaitTimeout * 1000, timer: null };
    pool.waiting.push(w);
    this.armWait(pool, w);
    this.serve(pool);
  }

  private armWait(pool: LabelPool, w: Waiter): void {
    w.timer = setTimeout(() => {
      pool.removeWaiter(w.held);
      w.held.destroy();
      this.refuseClient(pool.label, 'timeout');
      this.forgetIfEmpty(pool);
    }, Math.max(0, w.deadline - Date.now()));
    w.timer.unref();
  }

  private refuseClient(label: string, why: ClientRefusal): void {
    // conn-limit refusals come in floods: counted by metrics, logged at debug only. So do the
    // others when a stranger hammers a client port (279 queue-full refusals were 279 info
    // lines): the first few per label and minute at info, the rest at debug.
    const quiet = why === 'conn-limit' || !this.refusalLog.allow(label);
    this.logger[quiet ? 'debug' : 'info']({ label, why }, 'mobile client refused');
    this.emit('client-refused', { label, why });
  }

  // ── pairing ────────────────────────────────────────────────────────────────

  /** Pairs waiting clients with idle responders, oldest with oldest. */
  private serve(pool: LabelPool): void {
    while (pool.waiting.length > 0 && pool.idle.length > 0) {
      const w = pool.waiting.shift()!;
      if (w.timer) clearTimeout(w.timer);
      const r = pool.idle.shift()!;
      pool.verifying++;
      void this.pairChecked(pool, w, r);
    }
  }

  /**
   * Issue 7: a responder that is already dead (reset, error or FIN received, perhaps unnoticed
   * while its reading was paused) is replaced by the next idle one before the client's bytes go
   * anywhere. A hidden server that vanished silently is left to TCP keepalive.
   */
  private async pairChecked(pool: LabelPool, w: Waiter, r: HeldSocket): Promise<void> {
    let alive = false;
    try {
      alive = await r.verify();
    } finally {
      pool.verifying--;
    }
    if (!alive && this.closed) return r.destroy();
    if (!alive) {
      r.destroy();
      this.logger.info({ label: pool.label }, 'idle responder found dead at pairing; trying the next one');
      this.emit('responder-dead', { label: pool.label });
      this.requeue(pool, w);
      return;
    }
    if (!w.held.alive || this.closed) {
      // The client left while the responder was checked: the responder goes back, first in line.
      if (w.held.alive) w.held.destroy();
      if (this.closed) r.destroy();
      else pool.idle.unshift(r);
      this.serve(pool);
      this.forgetIfEmpty(pool);
      return;
    }
    this.startPairing(pool, w, r);
  }

  private requeue(pool: LabelPool, w: Waiter): void {
    if (!w.held.alive) return this.forgetIfEmpty(pool);
    if (Date.now() >= w.deadline || pool.responders === 0) {
      w.held.destroy();
      this.refuseClient(pool.label, pool.responders === 0 ? 'no-responder' : 'timeout');
      return this.forgetIfEmpty(pool);
    }
    pool.waiting.unshift(w);
    this.armWait(pool, w);
    this.serve(pool);
  }

  private startPairing(pool: LabelPool, w: Waiter, r: HeldSocket): void {
    // One correlation id per pairing: its start and end lines (and the engine's) share it.
    const cid = newCorrelationId('p');
    withCorrelation(cid, () => this.runPairing(pool, w, r, cid));
  }

  private runPairing(pool: LabelPool, w: Waiter, r: HeldSocket, cid: string): void {
    const client = w.held.take();
    const responder = r.take();
    const live = new LivePairing(pool, cid, client.socket, responder.socket, this.connLimit, this.paths, this.pairingEnded);
    pool.active++;
    this.emit('paired', { label: pool.label, waitMs: live.start - w.arrived });
    this.engine.pair(client, responder, { idleTimeoutMs: this.config.pairingIdleTimeout * 1000, observer: live });
  }

  /**
   * One function for every pairing's end (a LivePairing keeps a reference, not a closure).
   * Called from the engine, for splice from a native completion: nothing may escape from here.
   */
  private readonly pairingEnded = (live: LivePairing, res: PairingResult): void => {
    try {
      this.recordPairingEnd(live, res);
    } catch (e) {
      this.logger.error({ label: live.pool.label, err: (e as Error)?.message }, 'recording the end of a pairing failed');
    }
  };

  private recordPairingEnd(live: LivePairing, res: PairingResult): void {
    const pool = live.pool;
    pool.active--;
    pool.clientPort?.touch();
    if (live.clientCounted) this.connLimit.release(live.clientAddr);
    if (live.responderCounted) this.connLimit.release(live.responderAddr);
    const rec: PairingRecord = {
      label: pool.label,
      responder: formatPeer(live.responderAddr, live.responderPort),
      client: formatPeer(live.clientAddr, live.clientPort),
      path: live.path,
      start: new Date(live.start).toISOString(),
      end: new Date().toISOString(),
      bytesUp: res.bytesUp,
      bytesDown: res.bytesDown,
      reason: res.reason,
    };
    if (this.nodeId !== undefined) rec.node = this.nodeId;
    this.emit('pairing-end', rec);
    // Waiting clients stay until their clientWaitTimeout even when no responder is left at this
    // instant: an agent registers replacements as its pairings end, moments later.
    this.forgetIfEmpty(pool);
  }

  // ── fixed client ports ─────────────────────────────────────────────────────

  setFixedPorts(ports: Map<string, number>): Promise<void> {
    // Serialised: entries may change again while ports are still being opened.
    this.fixedUpdate = this.fixedUpdate.then(() => this.applyFixedPorts(ports));
    return this.fixedUpdate;
  }

  private async applyFixedPorts(ports: Map<string, number>): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const [label, cp] of this.fixed) {
      if (ports.get(label) !== cp.port || this.closed) {
        this.fixed.delete(label);
        closing.push(cp.close());
      }
    }
    await Promise.all(closing);
    if (this.closed) return;
    for (const [label, port] of ports) {
      if (this.fixed.has(label)) continue;
      const cp = new ClientPort(label, true, 0, this.allocator, this.logger, {
        connection: (s) => this.takeClient(label, s),
        busy: () => true,
        idle: () => {},
      });
      try {
        await cp.open(port);
        this.fixed.set(label, cp);
      } catch (e) {
        this.logger.error({ label, port, err: (e as NodeJS.ErrnoException).code ?? (e as Error).message }, 'cannot open fixed client port');
      }
    }
  }

  // ── state ──────────────────────────────────────────────────────────────────

  labelState(label: string): LabelState {
    const p = this.pools.get(label);
    return {
      label,
      idle: p?.idle.length ?? 0,
      pending: p?.pending ?? 0,
      waiting: p?.waiting.length ?? 0,
      active: p?.active ?? 0,
      clientPort: p?.clientPort?.port ?? null,
      fixedPort: this.fixed.get(label)?.port ?? null,
    };
  }

  snapshot(): LabelState[] {
    const labels = new Set([...this.pools.keys(), ...this.fixed.keys()]);
    return [...labels].sort().map((l) => this.labelState(l));
  }

  get openPorts(): number {
    return this.allocator.open;
  }

  get activePairings(): number {
    let n = 0;
    for (const p of this.pools.values()) n += p.active;
    return n;
  }

  // ── drain and shutdown ─────────────────────────────────────────────────────

  stopAccepting(): void {
    this.accepting = false;
  }

  closeAll(reason: 'closed' | 'drain'): void {
    this.engine.closeAll(reason);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.accepting = false;
    const closing: Promise<void>[] = [...this.registrations].map((r) => r.close());
    for (const pool of this.pools.values()) {
      for (const h of pool.idle.splice(0)) h.destroy();
      for (const w of pool.waiting.splice(0)) {
        if (w.timer) clearTimeout(w.timer);
        w.held.destroy();
      }
      if (pool.clientPort) closing.push(pool.clientPort.close());
      if (pool.opening) closing.push(pool.opening.then(() => pool.clientPort?.close(), () => undefined));
    }
    await this.fixedUpdate.catch(() => undefined);
    for (const cp of this.fixed.values()) closing.push(cp.close());
    this.fixed.clear();
    await Promise.all(closing);
  }

  private pool(label: string): LabelPool {
    let p = this.pools.get(label);
    if (!p) this.pools.set(label, (p = new LabelPool(label)));
    return p;
  }

  /** Keeps the label map bounded by the labels actually in use. */
  /**
   * Entries changed (`owners`: each granted label → its entry ID): idle responders of a label
   * whose entry was removed, or that moved to another entry, are closed at once, and so are
   * such responders that connect later, so a revoked hidden server gets no more clients.
   * Revocations are judged against the previous call's map, never by absence alone: a label
   * granted a moment ago may reach a responder before it reaches this map. Pairings already
   * established are left to end. Returns how many responders were closed.
   */
  dropRevoked(owners: ReadonlyMap<string, string>): number {
    for (const [label, id] of this.labelOwners) if (owners.get(label) !== id) this.revoked.add(`${label} ${id}`);
    for (const [label, id] of owners) this.revoked.delete(`${label} ${id}`);
    this.labelOwners = new Map(owners);
    let total = 0;
    for (const pool of [...this.pools.values()]) {
      let n = 0;
      for (const h of [...pool.idle]) {
        if (!this.revoked.has(`${pool.label} ${this.owners.get(h)}`)) continue;
        pool.removeIdle(h);
        h.destroy();
        n++;
      }
      if (n) this.logger.info({ label: pool.label, closed: n }, 'idle responders closed: their entry no longer holds the label');
      total += n;
      this.forgetIfEmpty(pool);
    }
    return total;
  }

  private forgetIfEmpty(pool: LabelPool): void {
    if (pool.empty && this.pools.get(pool.label) === pool) {
      this.pools.delete(pool.label);
      this.paths.forget(pool.label);
    }
  }
}
