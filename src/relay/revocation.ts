/**
 * Revocation: which entry each idle responder registered for, and which `label ID` pairs no
 * longer hold (entry removed, label moved), so that a revoked hidden server gets no more
 * clients. Separate because it is judged across calls (dropRevoked keeps the previous map),
 * apart from the rest of the responder's life.
 */
import type { Logger } from 'pino';
import type { HeldSocket } from './held-socket.js';
import type { LabelQueues } from './label-queue.js';

export class Revocation {
  /** The entry ID each idle responder registered with. */
  private readonly owners = new WeakMap<HeldSocket, string>();
  /** Label → owning entry ID, as last given to dropRevoked. */
  private labelOwners: ReadonlyMap<string, string> = new Map();
  /** `label ID` pairs that held once and hold no more (entry removed, label moved). */
  private readonly revoked = new Set<string>();

  constructor(
    private readonly queues: LabelQueues,
    private readonly logger: Logger,
  ) {}

  /** Whether a responder registered by `id` for `label` may no longer serve it. */
  isRevoked(label: string, id: string): boolean {
    return this.revoked.has(`${label} ${id}`);
  }

  /** The entry an idle responder registered with (for the hand-over). */
  ownerOf(held: HeldSocket): string | undefined {
    return this.owners.get(held);
  }

  /** Notes the entry an idle responder registered with. */
  own(held: HeldSocket, id: string): void {
    this.owners.set(held, id);
  }

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
    for (const q of [...this.queues.values()]) {
      const n = q.dropIdle((h) => this.revoked.has(`${q.label} ${this.owners.get(h)}`));
      if (n) this.logger.info({ label: q.label, closed: n }, 'idle responders closed: their entry no longer holds the label');
      total += n;
    }
    return total;
  }
}
