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
import type { PairingRecord } from '../store/types.js';
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
import { Admission, type AdmissionPoint, type Refused } from './admission.js';
import { Policies, addressAllowed } from './policies.js';
import { RateBuckets } from './rate-buckets.js';
import { Bandwidths } from './bandwidth.js';
import { QUOTA_READ_WAIT_MS, QuotaBook, type DailyBytes } from './quota.js';
import type { LabelPolicy } from '../protocol/policy.js';
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
  /** The store's count of a label's octets on a UTC day, over every node (a label policy's quota). */
  dailyBytes?: DailyBytes;
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
  private readonly policies: Policies;
  private readonly admission: Admission;
  private readonly quota: QuotaBook;
  /** Clients per label on the other nodes (multi-node: the directory's live states), for maxPairings. */
  private remote = new Map<string, number>();
  private remoteRefresh: (() => Promise<void>) | null = null;

  constructor(deps: RelayDeps) {
    super();
    this.engine = deps.engine;
    this.logger = deps.logger;
    const core = (this.core = new RelayCore(deps.config, this.logger, (event, payload) => {
      // A pairing's octets count toward its label's quota before anyone hears of its end.
      if (event === 'pairing-end') {
        const rec = payload as PairingRecord;
        this.quota.add(rec.label, rec.bytesUp + rec.bytesDown, Date.parse(rec.end));
      }
      void this.emit(event, payload);
    }));
    // Limits read through `core.config` at each use, so that a reload (SIGHUP) applies them.
    const allocator = (this.allocator = new PortAllocator(() => core.config.portRange, core.config.taasHost, () => core.config.maxPorts));
    const connLimit = new ConnLimit(() => core.config.maxConnsPerAddress);
    const paths = new PathBook();
    const refusals = new ClientRefusals(core);
    this.policies = new Policies(() => core.config.defaultPolicy);
    const bandwidths = new Bandwidths(this.engine);
    const bandwidthOf = (label: string) => {
      const rate = this.policies.of(label)?.policy.bandwidth;
      return rate === undefined ? undefined : bandwidths.of(label, rate);
    };
    const pairing = new Pairing(core, this.engine, connLimit, paths, deps.nodeId ?? deps.config.current.nodeId, bandwidthOf);
    this.queues = new LabelQueues(
      {
        matched: (q, w, r) => pairing.matched(q, w, r),
        refused: (label, why) => refusals.refuse(label, why),
        forgotten: (label) => {
          paths.forget(label);
          bandwidths.forget(label);
        },
      },
      this.logger,
    );
    this.quota = new QuotaBook(deps.dailyBytes ?? null, (label, err) => this.logger.warn({ label, err: (err as Error)?.message }, "the label's day count could not be read from the store; its quota counts this node's pairings only until it can"));
    this.admission = new Admission(core, this.policies, this.queues, new RateBuckets(), this.quota, (label) => this.remote.get(label) ?? 0);
    this.clients = new MobileClients(core, this.queues, paths, allocator, connLimit, refusals, this.admission);
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

  /**
   * Before an SNI passthrough client is carried to another node: its label's policy checked here,
   * on its own address (the other node sees this node's). False: refused and reset.
   */
  async admitCarried(label: string, socket: net.Socket): Promise<boolean> {
    await this.prepareAdmission(label);
    return !socket.destroyed && this.clients.admitCarried(label, socket);
  }

  clientPort(label: string, req: { remoteAddress: string; path: string }): Promise<number | null> {
    return this.clients.clientPort(label, req, this.fixed.get(label));
  }

  setFixedPorts(ports: Map<string, number>): Promise<void> {
    return this.fixed.set(ports);
  }

  /**
   * The admission check of the label's traffic policy (admission.ts) for a mobile client from
   * `address`: null to go on, else why not. The registrar calls it before its 307 ('redirect');
   * relay ports call it for every connection ('connection', which takes a rate token), and so
   * may any other entry point (SNI passthrough) that hands clients to the relay.
   */
  admitClient(label: string, address: string | undefined, at: AdmissionPoint): Refused | null {
    return this.admission.check(label, address, at);
  }

  /**
   * What the registrar awaits before admitting a client of `label` for its 307 (bounded by
   * QUOTA_READ_WAIT_MS): the day's count from the store when the policy sets a quota, the other
   * nodes' clients when it sets maxPairings, so that what other nodes did is seen at once.
   */
  async prepareAdmission(label: string): Promise<void> {
    const p = this.policies.of(label)?.policy;
    if (!p) return;
    const reads: Promise<void>[] = [];
    if (p.quota !== undefined) reads.push(this.quota.refreshWithin(label, QUOTA_READ_WAIT_MS));
    if (p.maxPairings !== undefined && this.remoteRefresh) reads.push(withinMs(this.remoteRefresh(), QUOTA_READ_WAIT_MS));
    await Promise.all(reads);
  }

  /**
   * Multi-node: the clients (waiting and paired) of each label on the other nodes, and how to
   * read them again (src/cluster/node-link.ts sets both). maxPairings counts them too.
   */
  setRemoteClients(counts: ReadonlyMap<string, number>): void {
    this.remote = new Map(counts);
  }

  setRemoteRefresh(refresh: (() => Promise<void>) | null): void {
    this.remoteRefresh = refresh;
  }

  /**
   * The entries' traffic policies (label → policy), whenever entries change. New pairings get
   * them at once; established ones keep theirs, except that a label whose allow/deny lists
   * changed has its pairings from addresses now refused closed. Returns how many were closed.
   */
  setPolicies(policies: ReadonlyMap<string, LabelPolicy>): number {
    const { changed, addresses } = this.policies.set(policies);
    if (changed.length > 0) this.logger.info({ labels: changed }, 'label policies changed');
    return this.closeDenied(addresses);
  }

  /** Closes the pairings of `labels` whose client the label's policy (own or default) now refuses. */
  closeDenied(labels: Iterable<string>): number {
    let total = 0;
    for (const label of labels) {
      const p = this.policies.of(label);
      const q = this.queues.get(label);
      if (!p || !q) continue;
      let n = 0;
      for (const live of q.pairings()) {
        if (addressAllowed(p, live.clientAddr)) continue;
        live.close();
        n++;
      }
      if (n > 0) {
        this.logger.info({ label, closed: n }, 'pairings closed: their client is now denied by the label policy');
        this.emit('policy-closed', { label, count: n });
      }
      total += n;
    }
    return total;
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

/** Resolves when `p` settles or after `ms`, whichever is first; never rejects. */
async function withinMs(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p.catch(() => undefined), new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}
