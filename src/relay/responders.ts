/**
 * The responder side of the relay: a registration's one-shot port (allocate, with its limits)
 * and the responder it accepts, made ready for pairing (keepalive, held, put in the idle list).
 * Separate from the client side and from pairing: this is everything before a responder is
 * idle, and what counts registrations still pending.
 */
import type net from 'node:net';
import { TaasError } from '../errors.js';
import { normaliseAddress } from './address.js';
import type { ConnLimit } from './conn-limit.js';
import type { RelayCore } from './context.js';
import { setTcpUserTimeout } from './engines/splice.js';
import { HeldSocket } from './held-socket.js';
import { expectsPairingSignal } from './pairing-signal.js';
import type { LabelPool, LabelPools } from './pool.js';
import type { PortAllocator } from './ports.js';
import { Registration } from './registration.js';
import type { Revocation } from './revocation.js';

/** Seconds libuv's keepalive probes take to give up (10 probes, 1 s apart) after the idle time. */
const KEEPALIVE_PROBES_S = 10;

export interface RespondersContext {
  readonly core: RelayCore;
  readonly pools: LabelPools;
  readonly allocator: PortAllocator;
  readonly connLimit: ConnLimit;
  readonly revocation: Pick<Revocation, 'isRevoked' | 'own'>;
  /** Pairs waiting clients with idle responders (the pairing side). */
  serve(pool: LabelPool): void;
}

export class Responders {
  private readonly registrations = new Set<Registration>();
  private readonly pendingById = new Map<string, number>();
  private accepting = true;

  constructor(private readonly ctx: RespondersContext) {}

  /** Drain: no new registrations from now on. */
  stopAccepting(): void {
    this.accepting = false;
  }

  async allocate(reg: { id: string; label: string; remoteAddress: string; cookie: string }): Promise<{ port: number }> {
    const { core, pools } = this.ctx;
    if (!this.accepting || core.closed) throw new TaasError('TAAS_DRAINING', undefined, { retryAfter: 5 });
    const pendingForId = this.pendingById.get(reg.id) ?? 0;
    if (pendingForId >= core.config.maxPendingPerId) {
      throw new TaasError('TAAS_LIMIT_REACHED', `ID has ${pendingForId} registrations pending (maxPendingPerId)`, { retryAfter: 5 });
    }
    const pool = pools.of(reg.label);
    if (pool.idle.length + pool.pending >= core.config.maxIdlePerLabel) {
      throw new TaasError('TAAS_LIMIT_REACHED', `label ${reg.label} has ${core.config.maxIdlePerLabel} responders idle or pending (maxIdlePerLabel)`, { retryAfter: 5 });
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
    const r: Registration = new Registration(reg, core.config, this.ctx.allocator, this.ctx.connLimit, core.logger, {
      accepted: (socket, head, cookieless) => {
        settle();
        if (cookieless) core.logger.info({ label: reg.label, port: r.port }, 'original-protocol responder accepted without cookie');
        else expectsPairingSignal(socket);
        this.addResponder(reg.label, socket, head, reg.id);
      },
      refused: (why, remoteAddress) => core.emit('responder-refused', { label: reg.label, port: r.port, remoteAddress, why }),
      expired: () => {
        settle();
        core.logger.info({ label: reg.label, port: r.port }, 'registration expired');
        core.emit('registration-expired', { label: reg.label, port: r.port });
        pools.forgetIfEmpty(pool);
      },
    });
    this.registrations.add(r);
    let port: number;
    try {
      port = await r.start();
    } catch (e) {
      settle();
      pools.forgetIfEmpty(pool);
      throw e;
    }
    core.emit('allocated', { id: reg.id, label: reg.label, port, remoteAddress: normaliseAddress(reg.remoteAddress) });
    return { port };
  }

  private addResponder(label: string, socket: net.Socket, head: Buffer | undefined, id: string): void {
    const { core, pools } = this.ctx;
    socket.on('error', () => {}); // until HeldSocket takes over below; destroy() otherwise
    const pool = pools.of(label);
    if (core.closed) return void socket.destroy();
    // Registered before its entry was removed (or its label moved): it must not serve clients.
    if (this.ctx.revocation.isRevoked(label, id)) {
      core.logger.info({ label }, 'responder closed: its entry no longer holds the label');
      socket.destroy();
      pools.forgetIfEmpty(pool);
      return;
    }
    // A hidden server that vanished silently (NAT mapping dropped, host gone) is found by TCP
    // keepalive: libuv probes every 1 s, 10 times, after responderKeepalive s of silence.
    // TCP_USER_TIMEOUT (native addon, where built) gives the same bound to unacknowledged data,
    // so a client paired with such a responder before it was found is closed within it too,
    // rather than after ~15 minutes of retransmissions.
    socket.setKeepAlive(true, core.config.responderKeepalive * 1000);
    setTcpUserTimeout(socket, (core.config.responderKeepalive + KEEPALIVE_PROBES_S) * 1000);
    const held = new HeldSocket(socket, head, core.config.idleBufferBytes, (h) => {
      pool.removeIdle(h);
      core.logger.debug({ label }, 'idle responder left the pool');
      pools.forgetIfEmpty(pool);
    });
    this.ctx.revocation.own(held, id);
    if (pool.idle.length >= core.config.maxIdlePerLabel) {
      held.destroy();
      core.logger.info({ label }, 'idle responder closed: maxIdlePerLabel reached');
      return;
    }
    pool.idle.push(held);
    core.emit('responder-ready', { label });
    this.ctx.serve(pool);
  }

  /** At close: every registration still waiting closes. */
  close(): Promise<void>[] {
    return [...this.registrations].map((r) => r.close());
  }
}
