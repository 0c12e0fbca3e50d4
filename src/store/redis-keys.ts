/**
 * Key layout of the Redis store. Every operation touches keys of one hash tag only, so the
 * same code runs on one server and on Redis Cluster with no cross-slot command:
 *
 *   {P}:entries                 hash id → sealed entry JSON (secrets sealed by the SecretBox)
 *   {P}:labels                  hash label → id (the ownership index)
 *   {P}:gen                     counter bumped by every entry write (optimistic concurrency)
 *   {P}:daily-labels            set of labels that have daily counts
 *   {P:id:<id>}:step:<n>        replay guard: TOTP step n of this ID was used, from this bucket (TTL)
 *   {P:id:<id>}:reuse:<n>       reuses of step n by its first bucket (original-protocol pools; TTL)
 *   {P:id:<id>}:auth            hash failures, lockedUntil (TTL)
 *   {P:id:<id>}:attempts        list, newest first, capped
 *   {P:addr:<a>}:<window>       failures from an address in one window (TTL)
 *   {P:label:<l>}:pairings      list, newest first, capped
 *   {P:label:<l>}:daily         hash <day>:p / <day>:b → pairings / bytes
 *   {P:doc:<ns>}:d:<key>        one admin document (own TTL: a hash cannot expire fields in 7.0)
 *   {P:doc:<ns>}:index          set of the namespace's document keys
 *   {P}:events                  pub/sub channel of entry changes
 *   {P}:nodes, {P}:node:<id>,   the multi-node directory (src/store/directory-redis.ts): all
 *   {P}:idle:<id>, {P}:live:<id> node records under one tag so one round trip reads them all
 *
 * Entries share one tag on purpose: there are few, they are rarely written, and a create must
 * check label ownership against all of them atomically. Variable parts are URI-encoded so an ID
 * or document key holding `{`, `}` or `:` can neither move a key to another slot nor collide.
 */

/** Default prefix; `redis.prefix` lets several relays share one Redis. */
export const DEFAULT_PREFIX = 'taas';

const enc = (s: string): string => encodeURIComponent(s);

export class RedisKeys {
  constructor(readonly prefix: string = DEFAULT_PREFIX) {}

  private tag(kind?: string, value?: string): string {
    return kind === undefined ? `{${enc(this.prefix)}}` : `{${enc(this.prefix)}:${kind}:${enc(value!)}}`;
  }

  get entries(): string {
    return `${this.tag()}:entries`;
  }
  get labels(): string {
    return `${this.tag()}:labels`;
  }
  get gen(): string {
    return `${this.tag()}:gen`;
  }
  get dailyLabels(): string {
    return `${this.tag()}:daily-labels`;
  }
  get events(): string {
    return `${this.tag()}:events`;
  }

  step(id: string, step: number): string {
    return `${this.tag('id', id)}:step:${step}`;
  }
  stepReuses(id: string, step: number): string {
    return `${this.tag('id', id)}:reuse:${step}`;
  }
  auth(id: string): string {
    return `${this.tag('id', id)}:auth`;
  }
  attempts(id: string): string {
    return `${this.tag('id', id)}:attempts`;
  }
  addressWindow(address: string, window: number): string {
    return `${this.tag('addr', address)}:${window}`;
  }
  pairings(label: string): string {
    return `${this.tag('label', label)}:pairings`;
  }
  daily(label: string): string {
    return `${this.tag('label', label)}:daily`;
  }
  doc(ns: string, key: string): string {
    return `${this.tag('doc', ns)}:d:${enc(key)}`;
  }
  docIndex(ns: string): string {
    return `${this.tag('doc', ns)}:index`;
  }

  // ---- multi-node directory -------------------------------------------------------------
  /** Sorted set of node ids (score: last heartbeat, ms): an index; liveness is the TTL'd record. */
  get nodes(): string {
    return `${this.tag()}:nodes`;
  }
  /** One node's advertisement (JSON), with a TTL of three heartbeats. */
  node(id: string): string {
    return `${this.tag()}:node:${enc(id)}`;
  }
  /** One node's idle-responder counts (hash label → count), same TTL as its advertisement. */
  nodeIdle(id: string): string {
    return `${this.tag()}:idle:${enc(id)}`;
  }
  /** One node's live detail per label (JSON), for the admin page; same TTL. */
  nodeLive(id: string): string {
    return `${this.tag()}:live:${enc(id)}`;
  }
  /** Pub/sub channel on which a node receives requests. */
  nodeRequests(id: string): string {
    return `${this.tag()}:req:${enc(id)}`;
  }
  /** Pub/sub channel on which a node receives replies to its requests. */
  nodeReplies(id: string): string {
    return `${this.tag()}:rep:${enc(id)}`;
  }
}
