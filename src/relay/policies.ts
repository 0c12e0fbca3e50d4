/**
 * The traffic policy of each label, as the relay applies it: the entries' policies (given by
 * the daemon whenever entries change, from any node) and the config's defaultPolicy for labels
 * without one (read from the live view at each use, so a reload applies at once). Each policy
 * is compiled once (its CIDR lists into sets) and kept while it stays the same object.
 */
import { CidrSet, parseCidr } from '../protocol/cidr.js';
import type { LabelPolicy } from '../protocol/policy.js';

/** A policy ready to check addresses against. */
export interface CompiledPolicy {
  readonly policy: LabelPolicy;
  readonly allow: CidrSet | null;
  readonly deny: CidrSet | null;
}

function cidrs(list: string[] | undefined): CidrSet | null {
  if (!list) return null;
  // Stored policies were validated when written; a malformed block (hand-edited store) is skipped.
  return new CidrSet(list.map((c) => parseCidr(c)).filter((c) => c !== null));
}

export function compilePolicy(policy: LabelPolicy): CompiledPolicy {
  return { policy, allow: cidrs(policy.allow), deny: cidrs(policy.deny) };
}

/** Whether `address` may reach the label under `p`: not denied, and allowed when a list is given. */
export function addressAllowed(p: CompiledPolicy, address: string): boolean {
  if (p.deny?.has(address)) return false;
  return !p.allow || p.allow.has(address);
}

export class Policies {
  private byLabel = new Map<string, CompiledPolicy>();
  private fallback: { from: LabelPolicy; compiled: CompiledPolicy } | null = null;

  constructor(private readonly defaultPolicy: () => LabelPolicy | undefined) {}

  /**
   * The entries' policies, label → policy, replacing the previous ones. Returns the labels
   * whose policy changed, and among them those whose allow/deny lists changed (their
   * established pairings are checked again).
   */
  set(policies: ReadonlyMap<string, LabelPolicy>): { changed: string[]; addresses: string[] } {
    const next = new Map<string, CompiledPolicy>();
    const changed: string[] = [];
    const addresses: string[] = [];
    const lists = (p: LabelPolicy | undefined) => JSON.stringify([p?.allow ?? null, p?.deny ?? null]);
    for (const [label, p] of policies) {
      const cur = this.byLabel.get(label);
      next.set(label, cur && JSON.stringify(cur.policy) === JSON.stringify(p) ? cur : compilePolicy(p));
    }
    for (const label of new Set([...policies.keys(), ...this.byLabel.keys()])) {
      const was = this.byLabel.get(label)?.policy;
      const now = policies.get(label);
      if (JSON.stringify(was ?? null) !== JSON.stringify(now ?? null)) changed.push(label);
      if (lists(was) !== lists(now)) addresses.push(label);
    }
    this.byLabel = next;
    return { changed, addresses };
  }

  /** The policy that applies to `label` now: its own, else the default, else null (no limits). */
  of(label: string): CompiledPolicy | null {
    const own = this.byLabel.get(label);
    if (own) return own;
    const d = this.defaultPolicy();
    if (!d) return null;
    if (this.fallback?.from !== d) this.fallback = { from: d, compiled: compilePolicy(d) };
    return this.fallback.compiled;
  }
}
