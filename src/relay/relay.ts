/**
 * The Relay: rendezvous ports, responder queues and pairing. The registrar calls `allocate` for
 * an authenticated registration and `clientPort` for a mobile client's request; the relay
 * opens the ports, takes in responders and clients, pairs them (FIFO both sides) and hands
 * each pairing to the relay engine. It emits events for metrics and logs (see RelayEvents).
 *
 * This file is the facade: the API other modules call, events, the label state and shutdown.
 * The rules live in the parts it builds, each given its direct dependencies, in one direction:
 * fixed-ports → clients → label-queue → pairing → engine, and responders → label-queue.
 * label-queue.ts owns each label's waiting and pairing state.
 */
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import type { Logger } from 'pino';
import type { ConfigView } from '../config/view.js';
import type { LabelLiveState } from '../store/directory.js';
import { ClientRefusals, MobileClients } from './clients.js';
import { ConnLimit } from './conn-limit.js';
import { RelayCore, type RelayEvents } from './core.js';
import type { RelayEngine } from './engine.js';
import { FixedPorts } from './fixed-ports.js';
import { LabelQueues } from './label-queue.js';
import { Pairing } from './pairing.js';
import { PathBook } from './path-book.js';
import { PortAllocator } from './ports.js';
import { Responders } from './responders.js';
import { Revocation } from './revocation.js';
import { SharedCookies } from './shared-registration.js';
import { RelayHandover, type DescriptorOps, type HandedOut } from './handover.js';
import type { RelayState } from '../protocol/handover.js';

export type { DescriptorOps, HandedOut } from './handover.js';

export type { ClientRefusal, RelayEvents } from './core.js';

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
  private readonly core: RelayCore;
  private readonly engine: RelayEngine;
  private readonly logger: Logger;
  private readonly allocator: PortAllocator;
  private readonly queues: LabelQueues;
  private readonly fixed: FixedPorts;
  private readonly clients: MobileClients;
  private readonly revocation: Revocation;
  private readonly responders: Responders;
  private readonly handover: RelayHandover;

  constructor(deps: RelayDeps) {
    super();
    this.engine = deps.engine;
    this.logger = deps.logger;
    const core = (this.core = new RelayCore(deps.config, this.logger, (event, payload) => void this.emit(event, payload)));
    // Limits read through `core.config` at each use, so that a reload (SIGHUP) applies them.
    const allocator = (this.allocator = new PortAllocator(() => core.config.portRange, core.config.taasHost, () => core.config.maxPorts));
    const connLimit = new ConnLimit(() => core.config.maxConnsPerAddress);
    const paths = new PathBook();
    const refusals = new ClientRefusals(core);
    const pairing = new Pairing(core, this.engine, connLimit, paths, deps.nodeId ?? deps.config.current.nodeId);
    this.queues = new LabelQueues(
      {
        matched: (q, w, r) => pairing.matched(q, w, r),
        refused: (label, why) => refusals.refuse(label, why),
        forgotten: (label) => paths.forget(label),
      },
      this.logger,
    );
    this.clients = new MobileClients(core, this.queues, paths, allocator, connLimit, refusals);
    this.fixed = new FixedPorts(core, allocator, this.clients);
    this.revocation = new Revocation(this.queues, this.logger);
    this.responders = new Responders(core, this.queues, allocator, connLimit, this.revocation, new SharedCookies(this.logger));
    this.handover = new RelayHandover({
      core,
      engine: this.engine,
      queues: this.queues,
      fixed: this.fixed,
      clients: this.clients,
      responders: this.responders,
      revocation: this.revocation,
      pairing,
    });
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
    return this.core.config;
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

  /** `shared`: the hidden server comes to the shared port with its cookie (port 0 is returned). */
  allocate(reg: { id: string; label: string; remoteAddress: string; cookie: string }, shared = false): Promise<{ port: number }> {
    return this.responders.allocate(reg, shared);
  }

  /**
   * The shared port read a `TAAS-Cookie` line: true when a shared registration took the socket
   * (paused; `rest` followed the line); false and the caller closes it.
   */
  takeSharedResponder(token: string, socket: net.Socket, rest: Buffer): boolean {
    return this.responders.claimShared(token, socket, rest);
  }

  /**
   * An SNI passthrough client from the shared port (its ClientHello in `head`): admitted into
   * the label's queue like a client on a client port, paired with the oldest idle responder.
   */
  takePassthroughClient(label: string, socket: net.Socket, head: Buffer): void {
    this.clients.takeClient(label, socket, head);
  }

  clientPort(label: string, req: { remoteAddress: string; path: string }): Promise<number | null> {
    return this.clients.clientPort(label, req, this.fixed.get(label));
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
    const q = this.queues.get(label);
    return {
      label,
      idle: q?.idle ?? 0,
      pending: q?.pending ?? 0,
      waiting: q?.waiting ?? 0,
      active: q?.active ?? 0,
      clientPort: q?.clientPort?.port ?? null,
      fixedPort: this.fixed.get(label)?.port ?? null,
    };
  }

  snapshot(): LabelState[] {
    const labels = new Set([...this.queues.labels(), ...this.fixed.labels()]);
    return [...labels].sort().map((l) => this.labelState(l));
  }

  get openPorts(): number {
    return this.allocator.open;
  }

  get activePairings(): number {
    return this.queues.active;
  }

  /**
   * Resolves once no pairing is in progress, or after `timeoutMs`: true when none is left.
   * Waits on `pairing-end` (emitted once the count has gone down), never polls.
   */
  pairingsEnded(timeoutMs: number): Promise<boolean> {
    if (this.activePairings === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.off('pairing-end', onEnd);
        resolve(this.activePairings === 0);
      };
      const onEnd = (): void => {
        if (this.activePairings === 0) finish();
      };
      const timer = setTimeout(finish, Math.max(0, timeoutMs));
      timer.unref();
      // First in line: a listener before it that throws would keep it from being called.
      this.prependListener('pairing-end', onEnd);
    });
  }

  // ── hand-over to a new daemon (issue 16; see handover.ts) ─────────────────────

  /** Gives away every port, registration, held socket and the pairings the engine can detach. */
  handOut(ops: DescriptorOps, detachMs: number): Promise<HandedOut> {
    return this.handover.handOut(ops, detachMs);
  }

  /** Takes in what the daemon this one replaces handed over. */
  adopt(state: RelayState, fds: readonly number[], ops?: DescriptorOps): Promise<void> {
    return this.handover.adopt(state, fds, ops);
  }

  // ── drain and shutdown ─────────────────────────────────────────────────────

  stopAccepting(): void {
    this.responders.stopAccepting();
  }

  closeAll(reason: 'closed' | 'drain'): void {
    this.engine.closeAll(reason);
  }

  async close(): Promise<void> {
    this.core.close();
    this.responders.stopAccepting();
    const closing: Promise<void>[] = [...this.responders.close(), ...this.queues.close()];
    closing.push(this.fixed.close());
    await Promise.all(closing);
  }
}
