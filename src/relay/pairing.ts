/**
 * The pairing side of the relay: takes the oldest waiting client and the oldest idle
 * responder, checks the responder is still alive, hands both to the engine, and records the
 * pairing's end. Separate from the client side (which queues clients) and from the responder
 * side (which fills the idle list): this is where the two queues meet, and the only part that
 * talks to the engine.
 */
import { newCorrelationId, withCorrelation } from '../observe/correlation.js';
import type { PairingRecord } from '../store/types.js';
import { formatPeer } from './address.js';
import type { ConnLimit } from './conn-limit.js';
import type { ClientRefusal, RelayCore } from './context.js';
import type { PairingResult, RelayEngine } from './engine.js';
import type { HeldSocket } from './held-socket.js';
import { LivePairing } from './live-pairing.js';
import { sendPairingSignal } from './pairing-signal.js';
import type { PathBook } from './path-book.js';
import type { LabelPool, LabelPools, Waiter } from './pool.js';

export interface PairingContext {
  readonly core: RelayCore;
  readonly pools: LabelPools;
  readonly engine: RelayEngine;
  readonly connLimit: ConnLimit;
  readonly paths: PathBook;
  readonly nodeId: string | undefined;
  /** The client side, for a client put back in the queue. */
  readonly clients: {
    armWait(pool: LabelPool, w: Waiter): void;
    refuseClient(label: string, why: ClientRefusal): void;
  };
}

export class Pairing {
  constructor(private readonly ctx: PairingContext) {}

  /** Pairs waiting clients with idle responders, oldest with oldest. */
  serve(pool: LabelPool): void {
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
    const { core } = this.ctx;
    let alive = false;
    try {
      alive = await r.verify();
    } finally {
      pool.verifying--;
    }
    if (!alive && core.closed) return r.destroy();
    if (!alive) {
      r.destroy();
      core.logger.info({ label: pool.label }, 'idle responder found dead at pairing; trying the next one');
      core.emit('responder-dead', { label: pool.label });
      this.requeue(pool, w);
      return;
    }
    if (!w.held.alive || core.closed) {
      // The client left while the responder was checked: the responder goes back, first in line.
      if (w.held.alive) w.held.destroy();
      if (core.closed) r.destroy();
      else pool.idle.unshift(r);
      this.serve(pool);
      this.ctx.pools.forgetIfEmpty(pool);
      return;
    }
    this.startPairing(pool, w, r);
  }

  private requeue(pool: LabelPool, w: Waiter): void {
    const { pools, clients } = this.ctx;
    if (!w.held.alive) return pools.forgetIfEmpty(pool);
    if (Date.now() >= w.deadline || pool.responders === 0) {
      w.held.destroy();
      clients.refuseClient(pool.label, pool.responders === 0 ? 'no-responder' : 'timeout');
      return pools.forgetIfEmpty(pool);
    }
    pool.waiting.unshift(w);
    clients.armWait(pool, w);
    this.serve(pool);
  }

  private startPairing(pool: LabelPool, w: Waiter, r: HeldSocket): void {
    // One correlation id per pairing: its start and end lines (and the engine's) share it.
    const cid = newCorrelationId('p');
    withCorrelation(cid, () => this.runPairing(pool, w, r, cid));
  }

  private runPairing(pool: LabelPool, w: Waiter, r: HeldSocket, cid: string): void {
    const { core } = this.ctx;
    const client = w.held.take();
    const responder = r.take();
    const live = new LivePairing(pool, cid, client.socket, responder.socket, this.ctx.connLimit, this.ctx.paths, this.pairingEnded);
    pool.active++;
    core.emit('paired', { label: pool.label, waitMs: live.start - w.arrived });
    sendPairingSignal(core.config.proxyProtocol, client.socket, responder.socket);
    this.ctx.engine.pair(client, responder, { idleTimeoutMs: core.config.pairingIdleTimeout * 1000, observer: live });
  }

  /**
   * One function for every pairing's end (a LivePairing keeps a reference, not a closure).
   * Called from the engine, for splice from a native completion: nothing may escape from here.
   */
  private readonly pairingEnded = (live: LivePairing, res: PairingResult): void => {
    try {
      this.recordPairingEnd(live, res);
    } catch (e) {
      this.ctx.core.logger.error({ label: live.pool.label, err: (e as Error)?.message }, 'recording the end of a pairing failed');
    }
  };

  private recordPairingEnd(live: LivePairing, res: PairingResult): void {
    const { connLimit, nodeId } = this.ctx;
    const pool = live.pool;
    pool.active--;
    pool.clientPort?.touch();
    if (live.clientCounted) connLimit.release(live.clientAddr);
    if (live.responderCounted) connLimit.release(live.responderAddr);
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
    if (nodeId !== undefined) rec.node = nodeId;
    this.ctx.core.emit('pairing-end', rec);
    // Waiting clients stay until their clientWaitTimeout even when no responder is left at this
    // instant: an agent registers replacements as its pairings end, moments later.
    this.ctx.pools.forgetIfEmpty(pool);
  }
}
