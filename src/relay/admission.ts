/**
 * Admission of a mobile client by its label's traffic policy: the one check every entry point
 * calls before a client costs anything — the registrar before its 307, and the relay when a
 * connection arrives on a client port, a fixed port or (shared port) by SNI passthrough, before
 * the client is queued. A refused client takes no responder and no place in the queue.
 *
 * Order: deny/allow, the day's quota, then maxPairings, maxPairingsPerClient, then rate last, so that a token is
 * taken only by a client that is let in. The counts are the label queue's (label-queue.ts,
 * invariant 5): this node's clients waiting, being paired or paired; maxPairings adds those
 * of the other nodes (multi-node), as of their last published state (their heartbeat).
 */
import { addressBucket, normaliseAddress } from '../protocol/address.js';
import type { RelayCore } from './core.js';
import type { LabelQueues } from './label-queue.js';
import { addressAllowed, type CompiledPolicy, type Policies } from './policies.js';
import type { RateBuckets } from './rate-buckets.js';
import { secondsToNextDay, type QuotaBook } from './quota.js';

export type PolicyRefusal = 'denied' | 'quota' | 'max-pairings' | 'max-per-client' | 'rate';

export interface Refused {
  why: PolicyRefusal;
  /** Seconds after which trying again may succeed (limits; none for denied). */
  retryAfter?: number;
}

/** Where the check is made: at the registrar (a 307 about to be sent) or on a relay port. */
export type AdmissionPoint = 'redirect' | 'connection';

/** Seconds a client refused for a cap is told to wait: pairings of small hidden servers are short. */
const CAP_RETRY_S = 5;

export class Admission {
  constructor(
    private readonly core: RelayCore,
    private readonly policies: Policies,
    private readonly queues: LabelQueues,
    private readonly rates: RateBuckets,
    private readonly quota: QuotaBook,
    /** The label's clients on the other nodes of a multi-node relay, as they last published them. */
    private readonly remoteClients: (label: string) => number,
  ) {}

  /**
   * Null when a client of `label` from `address` may go on; else why not. At a connection the
   * rate token is taken; a 307 only looks (the connection that follows takes it). Every refusal
   * is emitted as `policy-refused` (metrics by label and reason).
   */
  check(label: string, address: string | undefined, at: AdmissionPoint): Refused | null {
    const p = this.policies.of(label);
    if (!p) return null;
    const verdict = this.verdict(label, normaliseAddress(address), p, at === 'connection');
    if (verdict) this.core.emit('policy-refused', { label, why: verdict.why, at });
    return verdict;
  }

  private verdict(label: string, addr: string, compiled: CompiledPolicy, take: boolean): Refused | null {
    const { policy } = compiled;
    if (!addressAllowed(compiled, addr)) return { why: 'denied' };
    if (policy.quota !== undefined && this.quota.over(label, policy.quota)) return { why: 'quota', retryAfter: secondsToNextDay(Date.now()) };
    const q = this.queues.get(label);
    if (policy.maxPairings !== undefined && (q?.clients ?? 0) + this.remoteClients(label) >= policy.maxPairings) return { why: 'max-pairings', retryAfter: CAP_RETRY_S };
    const bucket = addressBucket(addr);
    if (policy.maxPairingsPerClient !== undefined && (q?.clientsFrom(bucket) ?? 0) >= policy.maxPairingsPerClient) return { why: 'max-per-client', retryAfter: CAP_RETRY_S };
    if (policy.rate) {
      const wait = this.rates.check(label, bucket, policy.rate, take);
      if (wait > 0) return { why: 'rate', retryAfter: Math.max(1, Math.ceil(wait)) };
    }
    return null;
  }
}
