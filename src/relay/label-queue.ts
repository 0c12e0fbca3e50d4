/**
 * A label's rendezvous on this node: its idle responders and the mobile clients waiting for
 * one, paired oldest with oldest, and how many of its responders are in every other state.
 * LabelQueue is the one owner of that state: the relay's other parts call the methods below and
 * never touch the lists or the counts. LabelQueues is the map of them, label → queue.
 *
 * A responder's path through a queue:
 *   addPending (registration open) → responderArrived → idle → taken with a client (verifying)
 *   → begin (active, paired) → release (the pairing ended);
 *   or pendingDone (expired, refused on arrival), or it leaves while idle (its socket closed),
 *   or dropIdle (revoked), or, dead at its check, it is simply gone (requeue).
 * A mobile client's:
 *   enqueueClient (waiting, wait timer armed) → taken with a responder (verifying, timer off)
 *   → begin; or requeue (its responder was dead: first in line again), or refused (its wait
 *   ran out, or no responder is left), or it leaves while waiting.
 *
 * Invariants, each checked by test/relay/label-queue.test.ts:
 * 1. After every operation no client waits while a responder is idle: such a pair is taken at
 *    once, oldest client with oldest responder, and handed to `QueueHooks.matched`.
 * 2. A waiting client has its wait timer armed; a client taken for pairing has none.
 * 3. responders = idle + pending + verifying + active, and none of the counts is negative;
 *    LabelQueues.active is the sum of every queue's active.
 * 5. clientsFrom(b) is the number of the label's clients from address bucket b that are
 *    waiting, being paired or paired (what maxPairingsPerClient counts); their sum over every
 *    bucket is waiting + verifying + active (`clients`). The pairings in progress (`pairings()`)
 *    are exactly the `active` ones begun and not released.
 * 4. A queue is forgotten (removed from LabelQueues, `forgotten` told once) as soon as it holds
 *    nothing — no responder in any state, no waiting client, no client port open or opening —
 *    and only then; no caller asks for it. Whoever holds a queue holds it through one of those
 *    (a pending registration, a pairing, its client port), so a forgotten queue is never used
 *    again; `of(label)` makes a new one.
 */
import type net from 'node:net';
import type { Logger } from 'pino';
import type { ClientPort } from './client-port.js';
import { HeldSocket } from './held-socket.js';

export interface WaitingClient {
  readonly held: HeldSocket;
  /** The client's address bucket (addressBucket: IPv6 by /64), for invariant 5. */
  readonly bucket: string;
  /** When the client connected, ms since the epoch (for the pair-wait metric). */
  readonly arrived: number;
  /** ms since the epoch after which it is refused ('timeout'). */
  readonly deadline: number;
  /** @internal the queue's wait timer, armed only while the client waits */
  timer: NodeJS.Timeout | null;
}

/** What the queue keeps of a pairing in progress (a LivePairing): enough to close it for policy. */
export interface QueuedPairing {
  /** The client's address, normalised. */
  readonly clientAddr: string;
  readonly clientBucket: string;
  /** Ends the pairing now (its end is then reported as any other). */
  close(): void;
}

/** What a queue tells the rest of the relay. */
export interface QueueHooks {
  /**
   * A waiting client and an idle responder were taken (now `verifying`): check the responder
   * and pair them, then report back with begin, requeue, putBack or abandon (pairing.ts).
   */
  matched(q: LabelQueue, client: WaitingClient, responder: HeldSocket): void;
  /** A waiting client was closed by the queue itself. */
  refused(label: string, why: 'timeout' | 'no-responder'): void;
  /** The label's queue was forgotten (invariant 4). */
  forgotten(label: string): void;
}

export class LabelQueue {
  private readonly idleList: HeldSocket[] = [];
  private readonly waitingList: WaitingClient[] = [];
  private pendingCount = 0;
  private verifyingCount = 0;
  private activeCount = 0;
  /** Invariant 5: clients per address bucket, waiting, being paired or paired. */
  private readonly perClient = new Map<string, number>();
  private readonly live = new Set<QueuedPairing>();
  private port: ClientPort | null = null;
  private openingPort: Promise<number> | null = null;
  private gone = false;

  /** Made by LabelQueues.of only. */
  constructor(
    readonly label: string,
    private readonly owner: LabelQueues,
  ) {}

  // ── counts ─────────────────────────────────────────────────────────────────

  /** Idle responders, ready to be paired. */
  get idle(): number {
    return this.idleList.length;
  }

  /** Registrations whose responder has not connected yet. */
  get pending(): number {
    return this.pendingCount;
  }

  /** Responders taken with a client, being checked for liveness. */
  get verifying(): number {
    return this.verifyingCount;
  }

  /** Pairings in progress. */
  get active(): number {
    return this.activeCount;
  }

  /** Mobile clients waiting, being paired or paired: what maxPairings counts (invariant 5). */
  get clients(): number {
    return this.waitingList.length + this.verifyingCount + this.activeCount;
  }

  /** Those of `clients` from address bucket `bucket` (invariant 5). */
  clientsFrom(bucket: string): number {
    return this.perClient.get(bucket) ?? 0;
  }

  /** The pairings in progress (a copy: closing one changes the set). */
  pairings(): QueuedPairing[] {
    return [...this.live];
  }

  /** Mobile clients waiting for a responder. */
  get waiting(): number {
    return this.waitingList.length;
  }

  /** Responders that exist for this label in any state: idle, coming, being checked, busy. */
  get responders(): number {
    return this.idleList.length + this.pendingCount + this.verifyingCount + this.activeCount;
  }

  /** Clients in progress (waiting, being paired, paired): the label's client port stays open. */
  get busy(): boolean {
    return this.activeCount + this.verifyingCount + this.waitingList.length > 0;
  }

  /** Invariant 4: nothing left worth keeping the queue for. */
  get empty(): boolean {
    return this.responders === 0 && this.waitingList.length === 0 && !this.port && !this.openingPort;
  }

  /** Whether LabelQueues has let this queue go (invariant 4). */
  get forgotten(): boolean {
    return this.gone;
  }

  // ── responders ─────────────────────────────────────────────────────────────

  /** A registration for this label was allocated: its responder is coming. */
  addPending(): void {
    this.pendingCount++;
  }

  /** A registration ended without giving a responder (expired, failed, refused on arrival). */
  pendingDone(): void {
    if (this.pendingCount > 0) this.pendingCount--;
    this.forgetIfEmpty();
  }

  /**
   * A registration's responder arrived: pending → idle. The queue holds it (reading up to
   * `bufferBytes`, leaving when it closes) and pairs it with the oldest waiting client, if any.
   */
  responderArrived(socket: net.Socket, head: Buffer | undefined, bufferBytes: number): HeldSocket {
    if (this.pendingCount > 0) this.pendingCount--;
    const held = new HeldSocket(socket, head, bufferBytes, this.responderLeft);
    this.idleList.push(held);
    this.pairUp();
    return held;
  }

  /** Closes the idle responders `drop` picks (revocation). Returns how many. */
  dropIdle(drop: (h: HeldSocket) => boolean): number {
    let n = 0;
    for (const h of [...this.idleList]) {
      if (!drop(h)) continue;
      this.idleList.splice(this.idleList.indexOf(h), 1);
      h.destroy();
      n++;
    }
    if (n > 0) this.forgetIfEmpty();
    return n;
  }

  // ── clients ────────────────────────────────────────────────────────────────

  /**
   * A mobile client joins the back of the queue (the caller has applied the admission limits):
   * held (reading up to `bufferBytes`, a half-close after some octets kept), refused at
   * `deadline`, paired at once if a responder is idle. `head`: octets already read from it (an
   * SNI passthrough client's ClientHello), delivered to the responder first.
   */
  enqueueClient(socket: net.Socket, bufferBytes: number, arrived: number, deadline: number, bucket = '', head?: Buffer): WaitingClient {
    const held = new HeldSocket(socket, head, bufferBytes, this.clientLeft, true);
    const w: WaitingClient = { held, bucket, arrived, deadline, timer: null };
    this.perClient.set(bucket, this.clientsFrom(bucket) + 1);
    this.waitingList.push(w);
    this.armWait(w);
    this.pairUp();
    return w;
  }

  // ── the outcome of a match (verifying → …), reported by pairing ──────────────

  /** The pair passed its check: verifying → active; `p` is kept until `release(p)`. */
  begin(p?: QueuedPairing): void {
    this.verifyingCount--;
    this.activeCount++;
    if (p) this.live.add(p);
    this.owner.activeChanged(1);
  }

  /**
   * The responder was found dead (and closed by the caller): the client goes back to the front
   * of the queue with what is left of its wait, or is refused when that is over or no
   * responder is left in any state.
   */
  requeue(w: WaitingClient): void {
    this.verifyingCount--;
    if (!w.held.alive) {
      this.clientGone(w.bucket);
      return this.forgetIfEmpty();
    }
    const none = this.responders === 0;
    if (none || Date.now() >= w.deadline) {
      this.clientGone(w.bucket);
      w.held.destroy();
      this.owner.hooks.refused(this.label, none ? 'no-responder' : 'timeout');
      return this.forgetIfEmpty();
    }
    this.waitingList.unshift(w);
    this.armWait(w);
    this.pairUp();
  }

  /** The client left while its responder was checked: the responder is first in line again. */
  putBack(r: HeldSocket, w?: WaitingClient): void {
    this.verifyingCount--;
    if (w) this.clientGone(w.bucket);
    this.idleList.unshift(r);
    this.pairUp();
  }

  /** The relay closed while the pair was checked (the caller closed both). */
  abandon(w?: WaitingClient): void {
    this.verifyingCount--;
    if (w) this.clientGone(w.bucket);
    this.forgetIfEmpty();
  }

  /** A pairing of this label ended: active → gone; the client port's idle period restarts. */
  release(p?: QueuedPairing): void {
    if (this.activeCount > 0) {
      this.activeCount--;
      this.owner.activeChanged(-1);
    }
    if (p && this.live.delete(p)) this.clientGone(p.clientBucket);
    this.port?.touch();
    this.forgetIfEmpty();
  }

  // ── the label's client port (range ports; fixed ones live in fixed-ports.ts) ────

  /** The client port clients of this label are sent to, once open. */
  get clientPort(): ClientPort | null {
    return this.port;
  }

  /** The client port being opened, if one is. */
  get opening(): Promise<number> | null {
    return this.openingPort;
  }

  /** Opens `cp` as the label's client port; concurrent callers share `opening`. */
  async openClientPort(cp: ClientPort, adopted?: { port: number; fd: number }): Promise<number> {
    this.openingPort = cp.open(undefined, adopted);
    try {
      const port = await this.openingPort;
      this.port = cp;
      return port;
    } finally {
      this.openingPort = null;
      this.forgetIfEmpty();
    }
  }

  /** `cp` closed (for idleness): the label has no client port any more. */
  clientPortClosed(cp: ClientPort): void {
    if (this.port === cp) this.port = null;
    this.forgetIfEmpty();
  }

  // ── hand-over to a new daemon (issue 16) ──────────────────────────────────────

  /**
   * Gives away every idle responder and waiting client (their timers off, nothing closed) and
   * the range client port; what is being checked or paired stays.
   */
  handOut(): { idle: HeldSocket[]; waiting: WaitingClient[]; port: ClientPort | null } {
    const idle = this.idleList.splice(0);
    const waiting = this.waitingList.splice(0);
    for (const w of waiting) {
      if (w.timer) clearTimeout(w.timer);
      w.timer = null;
      this.clientGone(w.bucket);
    }
    const port = this.port;
    this.port = null;
    this.forgetIfEmpty();
    return { idle, waiting, port };
  }

  /** A pairing handed over by the daemon this one replaces: active from the start, its client counted (invariant 5). */
  adoptPairing(p: QueuedPairing): void {
    this.activeCount++;
    this.live.add(p);
    this.perClient.set(p.clientBucket, this.clientsFrom(p.clientBucket) + 1);
    this.owner.activeChanged(1);
  }

  /** A detached pairing left for the next daemon: gone here, without an end of its own. */
  pairingHandedOut(p: QueuedPairing): void {
    this.activeCount--;
    if (this.live.delete(p)) this.clientGone(p.clientBucket);
    this.owner.activeChanged(-1);
    this.forgetIfEmpty();
  }

  // ── shutdown ───────────────────────────────────────────────────────────────

  /** Relay shutdown: idle responders and waiting clients closed, the client port closed. */
  close(): Promise<void>[] {
    for (const h of this.idleList.splice(0)) h.destroy();
    this.perClient.clear();
    for (const w of this.waitingList.splice(0)) {
      if (w.timer) clearTimeout(w.timer);
      w.timer = null;
      w.held.destroy();
    }
    const closing: Promise<void>[] = [];
    if (this.port) closing.push(this.port.close());
    if (this.openingPort) closing.push(this.openingPort.then(() => this.port?.close(), () => undefined));
    return closing;
  }

  // ── the rules ──────────────────────────────────────────────────────────────

  /** Invariant 1: oldest waiting client with oldest idle responder, while both exist. */
  private pairUp(): void {
    while (this.waitingList.length > 0 && this.idleList.length > 0) {
      const w = this.waitingList.shift()!;
      if (w.timer) clearTimeout(w.timer);
      w.timer = null;
      const r = this.idleList.shift()!;
      this.verifyingCount++;
      this.owner.hooks.matched(this, w, r);
    }
  }

  private armWait(w: WaitingClient): void {
    // setTimeout with an argument: one shared function, no closure per waiting client.
    w.timer = setTimeout(this.waitExpired, Math.max(0, w.deadline - Date.now()), w);
    w.timer.unref();
  }

  private clientGone(bucket: string): void {
    const n = this.clientsFrom(bucket) - 1;
    if (n > 0) this.perClient.set(bucket, n);
    else this.perClient.delete(bucket);
  }

  private forgetIfEmpty(): void {
    if (!this.gone && this.empty) {
      this.gone = true;
      this.owner.forget(this);
    }
  }

  private readonly waitExpired = (w: WaitingClient): void => {
    w.timer = null;
    const i = this.waitingList.indexOf(w);
    if (i < 0) return;
    this.waitingList.splice(i, 1);
    this.clientGone(w.bucket);
    w.held.destroy();
    this.owner.hooks.refused(this.label, 'timeout');
    this.forgetIfEmpty();
  };

  /** A held responder's socket closed or failed (idle, or while being checked). */
  private readonly responderLeft = (h: HeldSocket): void => {
    const i = this.idleList.indexOf(h);
    if (i >= 0) this.idleList.splice(i, 1);
    this.owner.logger.debug({ label: this.label }, 'idle responder left the pool');
    this.forgetIfEmpty();
  };

  /** A held client's socket closed or failed (waiting, or while its responder is checked). */
  private readonly clientLeft = (h: HeldSocket): void => {
    const i = this.waitingList.findIndex((w) => w.held === h);
    if (i >= 0) {
      const [w] = this.waitingList.splice(i, 1);
      this.clientGone(w!.bucket);
      if (w!.timer) clearTimeout(w!.timer);
      w!.timer = null;
      this.owner.logger.debug({ label: this.label }, 'waiting client left');
    }
    this.forgetIfEmpty();
  };
}

/** label → LabelQueue, for the labels in use on this node (bounded by them: invariant 4). */
export class LabelQueues {
  private readonly queues = new Map<string, LabelQueue>();
  private activeTotal = 0;

  constructor(
    /** @internal read by the queues */
    readonly hooks: QueueHooks,
    /** @internal read by the queues */
    readonly logger: Pick<Logger, 'debug'>,
  ) {}

  get(label: string): LabelQueue | undefined {
    return this.queues.get(label);
  }

  /** The label's queue, made when it has none. */
  of(label: string): LabelQueue {
    let q = this.queues.get(label);
    if (!q) this.queues.set(label, (q = new LabelQueue(label, this)));
    return q;
  }

  labels(): IterableIterator<string> {
    return this.queues.keys();
  }

  values(): IterableIterator<LabelQueue> {
    return this.queues.values();
  }

  /** Pairings in progress over every label (invariant 3). */
  get active(): number {
    return this.activeTotal;
  }

  /** Relay shutdown: every queue closes its sockets and client port. */
  close(): Promise<void>[] {
    const closing: Promise<void>[] = [];
    for (const q of this.queues.values()) closing.push(...q.close());
    return closing;
  }

  /** @internal a queue's active count changed */
  activeChanged(by: number): void {
    this.activeTotal += by;
  }

  /** @internal a queue found itself empty (invariant 4) */
  forget(q: LabelQueue): void {
    if (this.queues.get(q.label) !== q) return;
    this.queues.delete(q.label);
    this.hooks.forgotten(q.label);
  }
}
