/**
 * Pairing: a client and a responder that a LabelQueue matched become a pairing. The responder
 * is checked for liveness first; then both sockets are handed to the engine, and the pairing's
 * end is recorded. The only part that talks to the engine; the queue decides who is matched
 * and what happens to a client whose responder was dead (LabelQueue.requeue).
 */
import { newCorrelationId, withCorrelation } from '../observe/correlation.js';
import type { PairingRecord } from '../store/types.js';
import { formatPeer } from './address.js';
import type { ConnLimit } from './conn-limit.js';
import type { RelayCore } from './core.js';
import type net from 'node:net';
import type { PairingResult, PairOptions, RelayEngine } from './engine.js';
import type { HeldSocket } from './held-socket.js';
import type { LabelQueue, WaitingClient } from './label-queue.js';
import { LivePairing, type CarriedPairing } from './live-pairing.js';
import { sendPairingSignal } from './pairing-signal.js';
import type { PathBook } from './path-book.js';

export class Pairing {
  constructor(
    private readonly core: RelayCore,
    private readonly engine: RelayEngine,
    private readonly connLimit: ConnLimit,
    private readonly paths: PathBook,
    private readonly nodeId: string | undefined,
    /** The label's bandwidth buckets under its policy now, if it sets one (bandwidth.ts). */
    private readonly bandwidthOf: (label: string) => PairOptions['bandwidth'],
  ) {}

  /** QueueHooks.matched: checks the responder, then pairs (or reports back to the queue). */
  matched(q: LabelQueue, w: WaitingClient, r: HeldSocket): void {
    void this.checkThenPair(q, w, r);
  }

  /**
   * Issue 7: a responder that is already dead (reset, error or FIN received, perhaps unnoticed
   * while its reading was paused) is replaced by the next idle one before the client's bytes go
   * anywhere. A hidden server that vanished silently is left to TCP keepalive.
   */
  private async checkThenPair(q: LabelQueue, w: WaitingClient, r: HeldSocket): Promise<void> {
    const alive = await r.verify();
    const { core } = this;
    if (core.closed) {
      r.destroy();
      w.held.destroy();
      return q.abandon(w);
    }
    if (!alive) {
      r.destroy();
      core.logger.info({ label: q.label }, 'idle responder found dead at pairing; trying the next one');
      core.emit('responder-dead', { label: q.label });
      return q.requeue(w);
    }
    // The client left while the responder was checked: the responder goes back, first in line.
    if (!w.held.alive) return q.putBack(r, w);
    // One correlation id per pairing: its start and end lines (and the engine's) share it.
    const cid = newCorrelationId('p');
    withCorrelation(cid, () => this.handOver(q, w, r, cid));
  }

  /**
   * The one place where a responder and a client become a pairing and are handed to the
   * engine; anything sent to either side before the engine copies octets belongs here.
   */
  private handOver(q: LabelQueue, w: WaitingClient, r: HeldSocket, cid: string): void {
    const { core } = this;
    const client = w.held.take();
    const responder = r.take();
    const live = new LivePairing(q, cid, client.socket, responder.socket, this.connLimit, this.paths, this.pairingEnded);
    q.begin(live);
    core.emit('paired', { label: q.label, waitMs: live.start - w.arrived });
    sendPairingSignal(core.config.proxyProtocol, client.socket, responder.socket);
    const bandwidth = this.bandwidthOf(q.label);
    live.handle = this.engine.pair(client, responder, { idleTimeoutMs: core.config.pairingIdleTimeout * 1000, observer: live, ...(bandwidth ? { bandwidth } : {}) });
  }

  /**
   * A pairing handed over by the daemon this one replaces (issue 16): the queue counts it
   * active, and this daemon's engine carries on relaying, the octets in flight first.
   */
  adopt(q: LabelQueue, cid: string, fds: { client: number; responder: number }, head: { client?: Buffer; responder?: Buffer }, carried: CarriedPairing, socket: (fd: number) => net.Socket): void {
    const { core, connLimit, engine } = this;
    if (carried.clientCounted) connLimit.hold(carried.clientAddr);
    if (carried.responderCounted) connLimit.hold(carried.responderAddr);
    const live = new LivePairing(q, cid, null, null, connLimit, this.paths, this.pairingEnded, carried);
    q.adoptPairing(live);
    // Limited by the label's bandwidth as this daemon's policy says, through this daemon's
    // buckets (the old daemon's bucket state is not carried: at most one burst more).
    const bandwidth = this.bandwidthOf(q.label);
    const opts: PairOptions = { idleTimeoutMs: core.config.pairingIdleTimeout * 1000, observer: live, ...(bandwidth ? { bandwidth } : {}) };
    withCorrelation(cid, () => {
      if (engine.pairDescriptors) return void (live.handle = engine.pairDescriptors(fds.client, fds.responder, head, opts));
      live.handle = engine.pair({ socket: socket(fds.client), head: head.client }, { socket: socket(fds.responder), head: head.responder }, opts);
    });
  }

  /** A pairing detached for the hand-over: it ends here without a record (the next daemon keeps it). */
  handedOut(live: LivePairing): void {
    if (live.clientCounted) this.connLimit.release(live.clientAddr);
    if (live.responderCounted) this.connLimit.release(live.responderAddr);
    live.queue.pairingHandedOut(live);
  }

  /**
   * One function for every pairing's end (a LivePairing keeps a reference, not a closure).
   * Called from the engine, for splice from a native completion: nothing may escape from here.
   */
  private readonly pairingEnded = (live: LivePairing, res: PairingResult): void => {
    try {
      this.recordPairingEnd(live, res);
    } catch (e) {
      this.core.logger.error({ label: live.queue.label, err: (e as Error)?.message }, 'recording the end of a pairing failed');
    }
  };

  private recordPairingEnd(live: LivePairing, res: PairingResult): void {
    const { connLimit, nodeId } = this;
    const q = live.queue;
    // Waiting clients stay until their clientWaitTimeout even when no responder is left at this
    // instant: an agent registers replacements as its pairings end, moments later.
    q.release(live);
    if (live.clientCounted) connLimit.release(live.clientAddr);
    if (live.responderCounted) connLimit.release(live.responderAddr);
    const rec: PairingRecord = {
      label: q.label,
      responder: formatPeer(live.responderAddr, live.responderPort),
      client: formatPeer(live.clientAddr, live.clientPort),
      path: live.path,
      start: new Date(live.start).toISOString(),
      end: new Date().toISOString(),
      bytesUp: live.carriedUp + res.bytesUp,
      bytesDown: live.carriedDown + res.bytesDown,
      reason: res.reason,
    };
    if (nodeId !== undefined) rec.node = nodeId;
    this.core.emit('pairing-end', rec);
  }
}
