/**
 * The Relay: rendezvous ports, responder pools and pairing. The registrar calls `allocate` for
 * an authenticated registration and `clientPort` for a mobile client's request; the relay
 * opens the ports, takes in responders and clients, pairs them (FIFO both sides) and hands
 * each pairing to the relay engine. It emits events for metrics and logs (see RelayEvents).
 *
 * This file is the facade: the API other modules call, the config of the moment, events, the
 * label state and shutdown. The rules live in the parts it wires together, each given only
 * what it needs: responders.ts (registrations), clients.ts (mobile clients), pairing.ts,
 * fixed-ports.ts and revocation.ts.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { ConfigView } from '../config/view.js';
import type { LabelLiveState } from '../store/directory.js';
import type { ClientPort } from './client-port.js';
import { MobileClients } from './clients.js';
import { ConnLimit } from './conn-limit.js';
import type { RelayCore, RelayEvents } from './context.js';
import type { RelayEngine } from './engine.js';
import { FixedPorts } from './fixed-ports.js';
import { Pairing } from './pairing.js';
import { PathBook } from './path-book.js';
import { type LabelPool, LabelPools } from './pool.js';
import { PortAllocator } from './ports.js';
import { Responders } from './responders.js';
import { Revocation } from './revocation.js';

export type { ClientRefusal, RelayEvents } from './context.js';

export interface RelayDeps {
  /** Read at each use, so that a reload (SIGHUP) applies to what starts from then on. */
  config: ConfigView;
  engine: RelayEngine;
  logger: Logger;
  nodeId?: string;
}

/** One label's live state on this node; the same shape the directory shares between nodes. */
export type LabelState = LabelLiveState;

export class Relay extends EventEmitter {
  private readonly view: ConfigView;
  private readonly engine: RelayEngine;
  private readonly logger: Logger;
  private readonly allocator: PortAllocator;
  private readonly pools: LabelPools;
  private readonly fixed: FixedPorts;
  private readonly clients: MobileClients;
  private readonly pairing: Pairing;
  private readonly revocation: Revocation;
  private readonly responders: Responders;
  private closed = false;

  constructor(deps: RelayDeps) {
    super();
    this.view = deps.config;
    this.engine = deps.engine;
    this.logger = deps.logger;
    // Limits read through `this.config` at each use, so that a reload (SIGHUP) applies them.
    this.allocator = new PortAllocator(() => this.config.portRange, this.config.taasHost, () => this.config.maxPorts);
    const connLimit = new ConnLimit(() => this.config.maxConnsPerAddress);
    const paths = new PathBook();
    const relay = this; // for the getters below, which read the Relay's state at each use
    const core: RelayCore = {
      get config() {
        return relay.config;
      },
      get closed() {
        return relay.closed;
      },
      logger: this.logger,
      emit: (event, payload) => void this.emit(event, payload),
    };
    const { allocator } = this;
    const pools = (this.pools = new LabelPools(paths));
    // The client side and pairing call each other (a queued client is served; a client whose
    // responder was found dead is queued again), as do the client side and the fixed ports.
    this.fixed = new FixedPorts({ core, allocator, takeClient: (label, s) => this.clients.takeClient(label, s) });
    const fixedPort = (label: string): ClientPort | undefined => this.fixed.get(label);
    const serve = (pool: LabelPool): void => this.pairing.serve(pool);
    this.clients = new MobileClients({ core, pools, paths, allocator, connLimit, fixedPort, serve });
    const nodeId = deps.nodeId ?? this.config.nodeId;
    this.pairing = new Pairing({ core, pools, engine: this.engine, connLimit, paths, nodeId, clients: this.clients });
    this.revocation = new Revocation({ core, pools });
    this.responders = new Responders({ core, pools, allocator, connLimit, revocation: this.revocation, serve });
  }

  /**
   * The config of the moment. After a SIGHUP (issue 7) the limits and timeouts read per use (maxIdlePerLabel, maxPendingPerId,
   * maxWaitingClients, clientWaitTimeout, clientPortIdle, registrationTimeout, idleBufferBytes,
   * pairingIdleTimeout) apply from now on to new registrations, clients and pairings;
   * established ones keep what they started with. portRange, maxPorts and maxConnsPerAddress
   * apply to the next port opened / connection accepted (ports already open stay open);
   * taasHost needs a restart.
   */
  private get config() {
    return this.view.current;
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

  // ── the API ────────────────────────────────────────────────────────────────

  allocate(reg: { id: string; label: string; remoteAddress: string; cookie: string }): Promise<{ port: number }> {
    return this.responders.allocate(reg);
  }

  clientPort(label: string, req: { remoteAddress: string; path: string }): Promise<number | null> {
    return this.clients.clientPort(label, req);
  }

  setFixedPorts(ports: Map<string, number>): Promise<void> {
    return this.fixed.set(ports);
  }

  /** See Revocation.dropRevoked. Returns how many idle responders were closed. */
  dropRevoked(owners: ReadonlyMap<string, string>): number {
    return this.revocation.dropRevoked(owners);
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
    const labels = new Set([...this.pools.labels(), ...this.fixed.labels()]);
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
    this.responders.stopAccepting();
  }

  closeAll(reason: 'closed' | 'drain'): void {
    this.engine.closeAll(reason);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.responders.stopAccepting();
    const closing: Promise<void>[] = this.responders.close();
    for (const pool of this.pools.values()) {
      for (const h of pool.idle.splice(0)) h.destroy();
      for (const w of pool.waiting.splice(0)) {
        if (w.timer) clearTimeout(w.timer);
        w.held.destroy();
      }
      if (pool.clientPort) closing.push(pool.clientPort.close());
      if (pool.opening) closing.push(pool.opening.then(() => pool.clientPort?.close(), () => undefined));
    }
    closing.push(this.fixed.close());
    await Promise.all(closing);
  }
}
