/**
 * The relay nodes an agent file lists (`server`, then `servers`), and which of them answer.
 * Registrations go to the answering node holding the fewest of this agent's idle responders
 * and registrations in flight (ties in turn), so a pool spreads evenly over the nodes; a node that stopped answering is
 * tried only after every answering one until its pause has passed, so the pool moves to the
 * others and comes back when it answers again.
 */
import type { RegistrarTarget } from './registrar-client.js';

interface NodeState {
  target: RegistrarTarget;
  /** Idle responders this agent holds on the node. */
  idle: number;
  /** Registrations being made there now: counted so that concurrent ones spread too. */
  inflight: number;
  /** Epoch ms until which the node counts as not answering (0: answering). */
  downUntil: number;
}

export class RelayNodes {
  private readonly nodes: NodeState[];
  private turn = 0;

  constructor(targets: RegistrarTarget[]) {
    this.nodes = targets.map((target) => ({ target, idle: 0, inflight: 0, downUntil: 0 }));
  }

  get size(): number {
    return this.nodes.length;
  }

  /** Every node, in the order to try them now. */
  order(now = Date.now()): RegistrarTarget[] {
    const start = this.turn++ % this.nodes.length;
    const turned = [...this.nodes.slice(start), ...this.nodes.slice(0, start)];
    const up = turned.filter((n) => n.downUntil <= now).sort((a, b) => a.idle + a.inflight - (b.idle + b.inflight));
    const down = turned.filter((n) => n.downUntil > now).sort((a, b) => a.downUntil - b.downUntil);
    return [...up, ...down].map((n) => n.target);
  }

  /** A registration to the node starts (+1) or has its answer (-1). */
  inflight(t: RegistrarTarget, delta: 1 | -1): void {
    const n = this.find(t);
    if (n) n.inflight = Math.max(0, n.inflight + delta);
  }

  /** The node did not answer: tried after the answering ones for `ms`. */
  markDown(t: RegistrarTarget, ms: number, now = Date.now()): void {
    const n = this.find(t);
    if (n) n.downUntil = now + ms;
  }

  /** The node answered (whatever it said). */
  markUp(t: RegistrarTarget): void {
    const n = this.find(t);
    if (n) n.downUntil = 0;
  }

  /** One more (+1) or one fewer (-1) idle responder on the node. */
  count(t: RegistrarTarget, delta: 1 | -1): void {
    const n = this.find(t);
    if (n) n.idle = Math.max(0, n.idle + delta);
  }

  snapshot(now = Date.now()): { node: string; idle: number; answering: boolean }[] {
    return this.nodes.map((n) => ({ node: `${n.target.host}:${n.target.port}`, idle: n.idle, answering: n.downUntil <= now }));
  }

  private find(t: RegistrarTarget): NodeState | undefined {
    return this.nodes.find((n) => n.target === t);
  }
}
