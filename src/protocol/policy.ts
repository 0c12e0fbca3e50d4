/**
 * A label's traffic policy, as stored in its entry, sent over the admin API and written in the
 * config's `defaultPolicy`: who may reach the label's hidden server (CIDR allow and deny lists),
 * how many pairings at once (for the label, per client address), how fast new ones may come
 * (per client address), how many octets per second and per UTC day. Every member is optional;
 * an absent one sets no limit. `validatePolicy` is the one check, for every way in (store,
 * API, CLI flags, config); it returns the canonical form (CIDRs normalised, members in order).
 * Enforcement lives in the relay (src/relay/admission.ts).
 */
import { TaasError } from '../errors.js';
import { formatCidr, parseCidr } from './cidr.js';

export interface RatePolicy {
  /** New pairings per second per client address (IPv6 by /64), refilled continuously. */
  perSecond: number;
  /** Pairings a client address may start at once after a quiet spell. */
  burst: number;
}

export interface LabelPolicy {
  /** When present, only mobile clients in one of these blocks are let in. */
  allow?: string[];
  /** Mobile clients in one of these blocks are refused (deny wins over allow). */
  deny?: string[];
  /** Pairings of the label at once (waiting and being paired included). */
  maxPairings?: number;
  /** Pairings at once per client address (IPv6 by /64, as the failure limit counts). */
  maxPairingsPerClient?: number;
  rate?: RatePolicy;
  /** Octets per second per direction, shared by all of the label's pairings. */
  bandwidth?: number;
  /** Octets per UTC day (both directions together), after which new pairings are refused. */
  quota?: number;
}

/** The members, in the order they are stored and printed. */
export const POLICY_KEYS = ['allow', 'deny', 'maxPairings', 'maxPairingsPerClient', 'rate', 'bandwidth', 'quota'] as const;

/** Bound on each CIDR list: each is matched per connection, and an entry stays a small document. */
export const MAX_POLICY_CIDRS = 256;
const MAX_COUNT = 1_000_000;
const MAX_RATE = 1_000_000;
/** 2^53 - 1: octet counts stay exact in a JavaScript number and in Redis INCRBY. */
const MAX_OCTETS = Number.MAX_SAFE_INTEGER;
/** Below this a token bucket of octets cannot hold one TCP segment's worth per tick: refused as a mistake. */
export const MIN_BANDWIDTH = 1024;

function invalid(where: string, msg: string): TaasError {
  return new TaasError('TAAS_POLICY_INVALID', `${where}: ${msg}`);
}

function whole(where: string, key: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw invalid(where, `${key} must be a whole number ${min}..${max}, not ${JSON.stringify(v)}`);
  return v;
}

function cidrList(where: string, key: string, v: unknown): string[] {
  if (!Array.isArray(v)) throw invalid(where, `${key} must be a list of CIDRs`);
  if (v.length > MAX_POLICY_CIDRS) throw invalid(where, `${key} holds ${v.length} CIDRs; at most ${MAX_POLICY_CIDRS}`);
  const out: string[] = [];
  for (const item of v) {
    const c = typeof item === 'string' ? parseCidr(item) : null;
    if (!c) throw invalid(where, `${key}: ${JSON.stringify(item)} is not a CIDR (a.b.c.d/n or x:y::z/n)`);
    const s = formatCidr(c);
    if (!out.includes(s)) out.push(s);
  }
  return out;
}

function rateOf(where: string, v: unknown): RatePolicy {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw invalid(where, 'rate must be { perSecond, burst }');
  const r = v as Record<string, unknown>;
  const extra = Object.keys(r).find((k) => k !== 'perSecond' && k !== 'burst');
  if (extra) throw invalid(where, `rate.${extra} is unknown; rate has perSecond and burst`);
  const ps = r.perSecond;
  if (typeof ps !== 'number' || !Number.isFinite(ps) || ps <= 0 || ps > MAX_RATE) throw invalid(where, `rate.perSecond must be a number above 0 and at most ${MAX_RATE}, not ${JSON.stringify(ps)}`);
  const burst = r.burst === undefined ? Math.max(1, Math.ceil(ps)) : whole(where, 'rate.burst', r.burst, 1, MAX_RATE);
  return { perSecond: ps, burst };
}

/**
 * The canonical policy from untrusted JSON, or TAAS_POLICY_INVALID naming `where` (the label
 * or the config key) and the member at fault. Unknown members are refused.
 */
export function validatePolicy(raw: unknown, where: string): LabelPolicy {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw invalid(where, 'a policy is an object');
  const p = raw as Record<string, unknown>;
  for (const k of Object.keys(p)) {
    if (!(POLICY_KEYS as readonly string[]).includes(k)) throw invalid(where, `${k} is unknown; a policy has ${POLICY_KEYS.join(', ')}`);
  }
  const out: LabelPolicy = {};
  if (p.allow !== undefined && p.allow !== null) out.allow = cidrList(where, 'allow', p.allow);
  if (p.deny !== undefined && p.deny !== null) out.deny = cidrList(where, 'deny', p.deny);
  if (p.maxPairings !== undefined && p.maxPairings !== null) out.maxPairings = whole(where, 'maxPairings', p.maxPairings, 1, MAX_COUNT);
  if (p.maxPairingsPerClient !== undefined && p.maxPairingsPerClient !== null) out.maxPairingsPerClient = whole(where, 'maxPairingsPerClient', p.maxPairingsPerClient, 1, MAX_COUNT);
  if (p.rate !== undefined && p.rate !== null) out.rate = rateOf(where, p.rate);
  if (p.bandwidth !== undefined && p.bandwidth !== null) out.bandwidth = whole(where, 'bandwidth', p.bandwidth, MIN_BANDWIDTH, MAX_OCTETS);
  if (p.quota !== undefined && p.quota !== null) out.quota = whole(where, 'quota', p.quota, 1, MAX_OCTETS);
  return out;
}

/** Whether a policy sets nothing at all. */
export function isEmptyPolicy(p: LabelPolicy | undefined): boolean {
  return !p || POLICY_KEYS.every((k) => p[k] === undefined);
}

/** The flags of `entries policy LABEL`, as given on the command line (strings). */
export interface PolicyFlags {
  allow?: string;
  deny?: string;
  maxPairings?: string;
  maxPairingsPerClient?: string;
  rate?: string;
  bandwidth?: string;
  quota?: string;
  clear?: boolean;
}

function flagInt(flag: string, v: string): number {
  if (!/^\d+$/.test(v.trim())) throw new TaasError('TAAS_POLICY_INVALID', `--${flag}: ${JSON.stringify(v)} is not a whole number`);
  return Number(v.trim());
}

/**
 * The policy that `entries policy LABEL` with `flags` makes of `cur`: --clear starts from
 * nothing, each flag given replaces its member (an empty --allow "" removes the list), the
 * rest is kept. The result is validated as any other write.
 */
export function applyPolicyFlags(cur: LabelPolicy | undefined, flags: PolicyFlags, where: string): LabelPolicy {
  const next: Record<string, unknown> = flags.clear ? {} : { ...(cur ?? {}) };
  const list = (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean);
  const set = (k: keyof LabelPolicy, v: unknown) => {
    if (v === undefined) delete next[k];
    else next[k] = v;
  };
  if (flags.allow !== undefined) set('allow', list(flags.allow).length ? list(flags.allow) : undefined);
  if (flags.deny !== undefined) set('deny', list(flags.deny).length ? list(flags.deny) : undefined);
  if (flags.maxPairings !== undefined) set('maxPairings', flagInt('max-pairings', flags.maxPairings));
  if (flags.maxPairingsPerClient !== undefined) set('maxPairingsPerClient', flagInt('max-pairings-per-client', flags.maxPairingsPerClient));
  if (flags.rate !== undefined) {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*(\d+)\s*)?$/.exec(flags.rate);
    if (!m) throw new TaasError('TAAS_POLICY_INVALID', `--rate: ${JSON.stringify(flags.rate)} is not N or N/BURST (pairings per second, burst)`);
    set('rate', { perSecond: Number(m[1]), ...(m[2] !== undefined ? { burst: Number(m[2]) } : {}) });
  }
  if (flags.bandwidth !== undefined) set('bandwidth', flagInt('bandwidth', flags.bandwidth));
  if (flags.quota !== undefined) set('quota', flagInt('quota', flags.quota));
  return validatePolicy(next, where);
}

/** Whether any flag that changes the policy was given (none: the command prints it). */
export function hasPolicyFlags(flags: PolicyFlags): boolean {
  return flags.clear === true || (['allow', 'deny', 'maxPairings', 'maxPairingsPerClient', 'rate', 'bandwidth', 'quota'] as const).some((k) => flags[k] !== undefined);
}

/** One line per member that is set, for people (`entries policy LABEL`). */
export function describePolicy(p: LabelPolicy): string[] {
  const out: string[] = [];
  if (p.allow) out.push(`allow:                   ${p.allow.join(', ')}`);
  if (p.deny) out.push(`deny:                    ${p.deny.join(', ')}`);
  if (p.maxPairings !== undefined) out.push(`max pairings:            ${p.maxPairings}`);
  if (p.maxPairingsPerClient !== undefined) out.push(`max pairings per client: ${p.maxPairingsPerClient}`);
  if (p.rate) out.push(`rate:                    ${p.rate.perSecond}/s, burst ${p.rate.burst}`);
  if (p.bandwidth !== undefined) out.push(`bandwidth:               ${p.bandwidth} octets/s each way`);
  if (p.quota !== undefined) out.push(`quota:                   ${p.quota} octets per UTC day`);
  return out;
}
