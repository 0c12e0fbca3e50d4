/**
 * The one configuration type and its schema. Flags, environment and file feed `validate`,
 * which rejects unknown keys, fills defaults once and returns a deep-frozen, complete object.
 * Durations are in seconds (fractions allowed), sizes in bytes.
 */
import net from 'node:net';
import { TaasError, oneLine } from '../errors.js';
import { validatePolicy, type LabelPolicy } from '../protocol/policy.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export type RelayEngineName = 'auto' | 'splice' | 'stream';

export interface RedisOptions {
  url?: string;
  host?: string;
  port?: number;
  password?: string;
  username?: string;
  db?: number;
  tls?: boolean;
  /** PEM file of the CA that signed the Redis server's certificate (TLS with a private CA). */
  tlsCaFile?: string;
  /** Sentinel: the master set name and the sentinels to ask. */
  sentinels?: { host: string; port: number }[];
  name?: string;
  /** Cluster: seed nodes. */
  cluster?: { host: string; port: number }[];
  /** Key prefix, so several relays can share one Redis. */
  prefix?: string;
}

export type AcmeChallenge = 'tls-alpn-01' | 'http-01' | 'dns-01';

/** Public certificates for the registrar from an ACME CA (docs/operations.md "ACME"). */
export interface AcmeOptions {
  /** The CA's directory URL (Let's Encrypt: https://acme-v02.api.letsencrypt.org/directory). */
  directoryUrl: string;
  /** Contact address for the account (expiry notices). */
  email?: string;
  /** Must be true: ordering means agreeing to the CA's terms of service. */
  termsOfServiceAgreed: boolean;
  /** PEM file of a private CA behind the directory's HTTPS (pebble, an in-house CA); public roots otherwise. */
  caFile?: string;
  /** PEM file of the root the CA's certificates chain to, when it is not a public root: agent files carry it. */
  rootFile?: string;
  /** How names are proved: tls-alpn-01 on the registrar port (default), http-01 on http01Port, dns-01 by dns01Hook. */
  challenge: AcmeChallenge;
  /** Port of the plain-HTTP listener that answers HTTP-01 (80 on a VPS); none when unset. */
  http01Port?: number;
  /** Command run as `HOOK add|remove RECORD VALUE` to publish DNS-01 TXT records. */
  dns01Hook?: string;
  /** Ask for `*.<namedServers>` (needs dns01Hook) instead of one name per redirect-mode label. */
  wildcard: boolean;
  /** Further names on the registrar's certificate. */
  names: string[];
  /** Days before expiry a certificate is renewed (fractions allowed). */
  renewBeforeDays: number;
  /** Seconds between checks: renewal due, names changed, a certificate another node stored. */
  checkInterval: number;
}

export interface Config {
  /** Address the registrar and all relay ports listen on, and the default advertised host. */
  taasHost: string;
  taasPort: number;
  namedRegistrar: string;
  namedServers: string;
  keyFile?: string;
  certFile?: string;
  keyData?: string;
  crtData?: string;
  redis?: string | RedisOptions;
  dataDir: string;
  /** Inclusive range of ports for registrations and client ports. */
  portRange: [number, number];
  /** Host put in Location and in the 200 body; `{label}` is replaced by the label. */
  advertiseHost?: string;
  /**
   * Host put in a mobile client's Location only (the 200 body keeps advertiseHost/taasHost);
   * `{label}` is replaced by the label: `{label}.taas.example.com` keeps the client on the
   * label's name, as the original did. Default: advertiseHost, else taasHost; with the
   * embedded names (taasHost, namedServers, advertiseHost all unset) `{label}.localhost`.
   */
  locationHost?: string;
  adminHost: string;
  adminPort: number;
  /** PEM key and certificate for the admin server; when both are set it speaks HTTPS (cookies get Secure). */
  adminKeyFile?: string;
  adminCertFile?: string;
  logLevel: LogLevel;
  relayEngine: RelayEngineName;
  /**
   * Accept original-protocol hidden servers: no TAAS-Cookie line on the allocated port, and a
   * TOTP code presented again within its own step (up to codeReusePerStep) to build a pool.
   */
  allowCookieless: boolean;
  /**
   * With allowCookieless: registrations per ID and TOTP step that may present the step's code
   * again, from the address bucket that first used it (an original hidden server's pool); 0 = none.
   */
  codeReusePerStep: number;
  /** PROXY protocol version of the header sent first to a cookie-speaking responder when it is paired. */
  proxyProtocol: 'v1' | 'v2';
  /** Only the registering address may connect to its allocated port. */
  checkSourceAddress: boolean;
  /** Seconds an allocated port waits for its hidden server. */
  registrationTimeout: number;
  /** Seconds a client port stays open with no connection and no pairing. */
  clientPortIdle: number;
  /** Seconds a mobile client waits on the client port for an idle responder. */
  clientWaitTimeout: number;
  /** Seconds an idle pairing (no octets either way) may last; 0 = never closed for idleness. */
  pairingIdleTimeout: number;
  /** Seconds established pairings get to finish on SIGTERM. */
  drainTimeout: number;
  /** Bytes a responder may send while idle (server-speaks-first), delivered once paired. */
  idleBufferBytes: number;
  maxWaitingClients: number;
  maxIdlePerLabel: number;
  maxPendingPerId: number;
  maxPorts: number;
  maxConnsPerAddress: number;
  maxHeaderBytes: number;
  maxHeaders: number;
  /** Seconds to receive complete request headers (slowloris bound). */
  headersTimeout: number;
  /** Seconds to complete a TLS handshake. */
  tlsHandshakeTimeout: number;
  /** Failed attempts in a row that lock an ID out. */
  lockoutThreshold: number;
  /** Seconds of the first lock-out; doubles with each further failure, up to lockoutMax. */
  lockoutBase: number;
  lockoutMax: number;
  /** Failed attempts per source address per minute before 429. */
  failuresPerAddress: number;
  /** Labels given their own series in metrics; the rest are folded into "other". */
  metricsLabelCap: number;
  /**
   * Seconds of silence on an idle responder before TCP keepalive probes start (Linux then
   * probes every second, 10 times): a hidden server that vanished silently leaves the pool
   * within this plus ~10 s.
   */
  responderKeepalive: number;
  /** File holding the key that encrypts TOTP secrets at rest. */
  secretKeyFile?: string;
  /** Seconds between node heartbeats in a multi-node relay; the TTL is three times this. */
  heartbeatInterval: number;
  /** A name for this node in a multi-node relay (defaults to host:port). */
  nodeId?: string;
  /** Seconds a TAAS-Session token (further registrations without a fresh TOTP code) stays valid. */
  sessionLifetime: number;
  /** Generate a registrar certificate in the data dir when none is configured; false serves plain HTTP. */
  generateCert: boolean;
  /**
   * The traffic policy of labels whose entry sets none (src/protocol/policy.ts); a label's own
   * policy replaces it whole. Absent: no limits beyond the relay's own.
   */
  defaultPolicy?: LabelPolicy;
  /** Public certificates for the registrar from an ACME CA; none when unset. */
  acme?: AcmeOptions;
  /**
   * One port for everything on taasPort: each connection is classified by its first octets — a
   * ClientHello for the registrar (or a redirect-mode label, or no SNI) goes to the registrar,
   * one for LABEL.<namedServers> of a passthrough label to that label's responders (SNI
   * passthrough), a `TAAS-Cookie` line is a responder; registrations that speak the cookie
   * protocol are answered with taasHost:taasPort. false: today's ports only.
   */
  sharedPort: boolean;
}

type Kind = 'string' | 'port' | 'number' | 'int' | 'bool' | 'range' | 'redis' | 'enum' | 'pem' | 'policy' | 'acme';

/**
 * What a SIGHUP does to a key: `live`, the next use reads the new value (every part reads the
 * config through the live view, src/config/view.ts); `restart`, the value is fixed at start
 * (a listener's address or parser option, the store, the engine) and a reload that changes it
 * says so and keeps the old one in effect. The one place this is decided: docs/operations.md
 * lists it and test/ops/reload-keys.test.ts observes every live key.
 */
export type Reload = 'live' | 'restart';

interface KeySpec {
  kind: Kind;
  reload: Reload;
  default?: unknown;
  values?: readonly string[];
  min?: number;
  max?: number;
}

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const SCHEMA: Record<keyof Config, KeySpec> = {
  taasHost: { kind: 'string', default: '127.0.0.1', reload: 'restart' },
  taasPort: { kind: 'port', default: 8443, reload: 'restart' },
  namedRegistrar: { kind: 'string', default: 'registrar.localhost', reload: 'live' },
  namedServers: { kind: 'string', default: 'localhost', reload: 'live' },
  keyFile: { kind: 'string', reload: 'live' },
  certFile: { kind: 'string', reload: 'live' },
  keyData: { kind: 'pem', reload: 'live' },
  crtData: { kind: 'pem', reload: 'live' },
  redis: { kind: 'redis', reload: 'restart' },
  dataDir: { kind: 'string', default: '.taas', reload: 'restart' },
  // Below Linux's ephemeral range (32768-60999): ports there are often held by outgoing
  // connections and TIME-WAIT sockets, which would make binding a chosen port fail.
  portRange: { kind: 'range', default: [20000, 29999], reload: 'live' },
  advertiseHost: { kind: 'string', reload: 'live' },
  locationHost: { kind: 'string', reload: 'live' },
  adminHost: { kind: 'string', default: '127.0.0.1', reload: 'restart' },
  adminPort: { kind: 'port', default: 8893, reload: 'restart' },
  adminKeyFile: { kind: 'string', reload: 'restart' },
  adminCertFile: { kind: 'string', reload: 'restart' },
  logLevel: { kind: 'enum', values: LEVELS, default: 'info', reload: 'live' },
  relayEngine: { kind: 'enum', values: ['auto', 'splice', 'stream'], default: 'auto', reload: 'restart' },
  allowCookieless: { kind: 'bool', default: false, reload: 'live' },
  // 16: with the first use, 17 registrations per step from one code: a pool of 16 (original hidden
  // servers keep up to 15) filled within one step, plus one retried.
  codeReusePerStep: { kind: 'int', default: 16, min: 0, max: 1000, reload: 'live' },
  proxyProtocol: { kind: 'enum', values: ['v2', 'v1'], default: 'v2', reload: 'live' },
  checkSourceAddress: { kind: 'bool', default: true, reload: 'live' },
  registrationTimeout: { kind: 'number', default: 30, min: 0.05, max: 3600, reload: 'live' },
  clientPortIdle: { kind: 'number', default: 300, min: 0.05, max: 86400, reload: 'live' },
  clientWaitTimeout: { kind: 'number', default: 10, min: 0, max: 600, reload: 'live' },
  pairingIdleTimeout: { kind: 'number', default: 0, min: 0, max: 86400 * 7, reload: 'live' },
  drainTimeout: { kind: 'number', default: 30, min: 0, max: 86400, reload: 'live' },
  idleBufferBytes: { kind: 'int', default: 65536, min: 0, max: 16 * 1024 * 1024, reload: 'live' },
  maxWaitingClients: { kind: 'int', default: 256, min: 0, max: 1_000_000, reload: 'live' },
  maxIdlePerLabel: { kind: 'int', default: 64, min: 1, max: 100_000, reload: 'live' },
  maxPendingPerId: { kind: 'int', default: 64, min: 1, max: 100_000, reload: 'live' },
  maxPorts: { kind: 'int', default: 4096, min: 1, max: 65535, reload: 'live' },
  maxConnsPerAddress: { kind: 'int', default: 512, min: 1, max: 1_000_000, reload: 'live' },
  maxHeaderBytes: { kind: 'int', default: 8192, min: 1024, max: 1024 * 1024, reload: 'restart' },
  maxHeaders: { kind: 'int', default: 50, min: 4, max: 1000, reload: 'live' },
  headersTimeout: { kind: 'number', default: 10, min: 0.1, max: 600, reload: 'live' },
  tlsHandshakeTimeout: { kind: 'number', default: 10, min: 0.1, max: 600, reload: 'restart' },
  lockoutThreshold: { kind: 'int', default: 5, min: 1, max: 1000, reload: 'live' },
  lockoutBase: { kind: 'number', default: 1, min: 0, max: 3600, reload: 'live' },
  lockoutMax: { kind: 'number', default: 900, min: 0, max: 86400, reload: 'live' },
  failuresPerAddress: { kind: 'int', default: 30, min: 1, max: 1_000_000, reload: 'live' },
  metricsLabelCap: { kind: 'int', default: 100, min: 0, max: 100_000, reload: 'live' },
  responderKeepalive: { kind: 'int', default: 30, min: 1, max: 7200, reload: 'live' },
  secretKeyFile: { kind: 'string', reload: 'restart' },
  heartbeatInterval: { kind: 'number', default: 3, min: 0.1, max: 600, reload: 'live' },
  nodeId: { kind: 'string', reload: 'restart' },
  sessionLifetime: { kind: 'number', default: 600, min: 10, max: 86400, reload: 'live' },
  generateCert: { kind: 'bool', default: true, reload: 'restart' },
  // The listener is one or the other from start (agents are told the shared port only when it is one).
  sharedPort: { kind: 'bool', default: false, reload: 'restart' },
  // The keeper, its listeners and the order lock are set up at start: a new acme block needs a restart.
  acme: { kind: 'acme', reload: 'restart' },
  // Read at each admission through the view; a reload that changes it also closes the pairings of newly denied addresses.
  defaultPolicy: { kind: 'policy', reload: 'live' },
};

export const CONFIG_KEYS = Object.keys(SCHEMA) as (keyof Config)[];

/** Keys a SIGHUP puts in force for their next use. */
export const LIVE_KEYS = CONFIG_KEYS.filter((k) => SCHEMA[k].reload === 'live');

/** Keys fixed for the process's life: a reload that changes one ignores it (and logs that). */
export const RESTART_KEYS = CONFIG_KEYS.filter((k) => SCHEMA[k].reload === 'restart');

/**
 * What a reload puts in force: `next` with every restart-only key kept at its `previous` value,
 * so that the live view never shows a value no part uses (a listener's old address, say), and
 * the restart-only keys that differed (what the reload ignored).
 */
export function reloaded(previous: Readonly<Config>, next: Readonly<Config>): { config: Readonly<Config>; ignored: (keyof Config)[] } {
  const ignored = RESTART_KEYS.filter((k) => JSON.stringify(previous[k]) !== JSON.stringify(next[k]));
  if (ignored.length === 0) return { config: next, ignored };
  const merged: Record<string, unknown> = { ...next };
  for (const k of ignored) {
    if (previous[k] === undefined) delete merged[k];
    else merged[k] = previous[k];
  }
  // Both sides are deep-frozen already: freezing the new top level keeps the whole frozen.
  return { config: Object.freeze(merged) as unknown as Readonly<Config>, ignored };
}

function bad(key: string, value: unknown, allowed: string): TaasError {
  const shown = typeof value === 'string' ? JSON.stringify(value) : JSON.stringify(value) ?? String(value);
  return new TaasError('TAAS_CONFIG_INVALID', `config key ${key}: ${shown} is not allowed; expected ${allowed}`);
}

function coerceNumber(key: string, v: unknown, spec: Pick<KeySpec, 'min' | 'max'>, int: boolean): number {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  const range = `${spec.min ?? '-inf'}..${spec.max ?? 'inf'}`;
  if (typeof n !== 'number' || !Number.isFinite(n)) throw bad(key, v, `a number ${range}`);
  if (int && !Number.isInteger(n)) throw bad(key, v, `a whole number ${range}`);
  if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) throw bad(key, v, `a number ${range}`);
  return n;
}

function coercePort(key: string, v: unknown, allowZero: boolean): number {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < (allowZero ? 0 : 1) || n > 65535) {
    throw bad(key, v, allowZero ? 'a port 0..65535 (0: chosen by the OS)' : 'a port 1..65535');
  }
  return n;
}

function coerce(key: keyof Config, v: unknown): unknown {
  const spec = SCHEMA[key];
  switch (spec.kind) {
    case 'string':
      if (typeof v !== 'string' || v.length === 0) throw bad(key, v, 'a non-empty string');
      return v;
    case 'pem':
      if (Buffer.isBuffer(v)) return v.toString('utf8');
      if (typeof v !== 'string' || !v.includes('-----BEGIN')) throw bad(key, typeof v === 'string' ? '(not PEM)' : v, 'PEM text or a Buffer of it');
      return v;
    case 'port':
      return coercePort(key, v, true);
    case 'number':
      return coerceNumber(key, v, spec, false);
    case 'int':
      return coerceNumber(key, v, spec, true);
    case 'bool':
      if (typeof v === 'boolean') return v;
      if (v === 'true' || v === '1' || v === 'yes') return true;
      if (v === 'false' || v === '0' || v === 'no') return false;
      throw bad(key, v, 'true or false');
    case 'enum':
      if (typeof v !== 'string' || !spec.values!.includes(v)) throw bad(key, v, spec.values!.join(' | '));
      return v;
    case 'range': {
      let pair: unknown = v;
      if (typeof v === 'string') {
        const m = /^\s*(\d+)\s*[-:,]\s*(\d+)\s*$/.exec(v);
        pair = m ? [Number(m[1]), Number(m[2])] : v;
      }
      if (!Array.isArray(pair) || pair.length !== 2) throw bad(key, v, '[low, high] or "low-high" with 1 <= low <= high <= 65535');
      const lo = coercePort(key, pair[0], false);
      const hi = coercePort(key, pair[1], false);
      if (lo > hi) throw bad(key, v, '[low, high] with low <= high');
      return [lo, hi];
    }
    case 'policy': {
      // From the environment (TAAS_DEFAULT_POLICY) it comes as JSON text.
      let obj: unknown = v;
      if (typeof v === 'string') {
        try {
          obj = JSON.parse(v);
        } catch {
          throw bad(key, v, 'a policy object (JSON in the environment)');
        }
      }
      try {
        return validatePolicy(obj, `config key ${key}`);
      } catch (e) {
        throw new TaasError('TAAS_CONFIG_INVALID', oneLine(e));
      }
    }
    case 'redis':
      if (typeof v === 'string') {
        if (!/^rediss?:\/\//.test(v)) throw bad(key, '(masked)', REDIS_ALLOWED);
        return v;
      }
      if (v && typeof v === 'object' && !Array.isArray(v)) return redisOptions(v as Record<string, unknown>);
      throw bad(key, '(masked)', REDIS_ALLOWED);
    case 'acme':
      // TAAS_ACME holds the object as JSON.
      if (typeof v === 'string' && v.trim().startsWith('{')) {
        try {
          v = JSON.parse(v) as unknown;
        } catch {
          throw bad(key, '(not JSON)', 'a JSON object { directoryUrl, ... }');
        }
      }
      if (v && typeof v === 'object' && !Array.isArray(v)) return acmeOptions(v as Record<string, unknown>);
      throw bad(key, v, '{ directoryUrl, email, termsOfServiceAgreed, ... }');
  }
}

const REDIS_ALLOWED = 'a redis:// or rediss:// URL, or { host, port, password, ... }';

type RedisKind = 'url' | 'string' | 'secret' | 'port' | 'db' | 'bool' | 'nodes';

/** Every key of a `redis` object and its kind: one table, checked like the top-level keys. */
const REDIS_SCHEMA: Record<keyof RedisOptions, RedisKind> = {
  url: 'url',
  host: 'string',
  port: 'port',
  password: 'secret',
  username: 'string',
  db: 'db',
  tls: 'bool',
  tlsCaFile: 'string',
  sentinels: 'nodes',
  name: 'string',
  cluster: 'nodes',
  prefix: 'string',
};

/** A `redis` object's sub-keys validated (unknown ones refused), as a new object. */
function redisOptions(raw: Record<string, unknown>): RedisOptions {
  const out: Record<string, unknown> = {};
  for (const [sub, v] of Object.entries(raw)) {
    const key = `redis.${sub}`;
    if (!Object.hasOwn(REDIS_SCHEMA, sub)) {
      throw new TaasError('TAAS_CONFIG_INVALID', `config key ${key} is unknown; a redis object takes ${Object.keys(REDIS_SCHEMA).join(', ')}`);
    }
    if (v === undefined || v === null) continue;
    const kind = REDIS_SCHEMA[sub as keyof RedisOptions];
    switch (kind) {
      case 'url':
        if (typeof v !== 'string' || !/^rediss?:\/\//.test(v)) throw bad(key, '(masked)', 'a redis:// or rediss:// URL');
        out[sub] = v;
        break;
      case 'string':
        if (typeof v !== 'string' || v.length === 0) throw bad(key, v, 'a non-empty string');
        out[sub] = v;
        break;
      case 'secret':
        if (typeof v !== 'string') throw bad(key, '(masked)', 'a string');
        out[sub] = v;
        break;
      case 'port':
        out[sub] = coercePort(key, v, false);
        break;
      case 'db':
        out[sub] = coerceNumber(key, v, { min: 0, max: 65535 }, true);
        break;
      case 'bool':
        if (typeof v !== 'boolean') throw bad(key, v, 'true or false');
        out[sub] = v;
        break;
      case 'nodes': {
        const allowed = 'a non-empty array of { host, port }';
        if (!Array.isArray(v) || v.length === 0) throw bad(key, v, allowed);
        out[sub] = v.map((n: unknown, i) => {
          const at = `${key}[${i}]`;
          if (!n || typeof n !== 'object' || Array.isArray(n)) throw bad(at, n, '{ host, port }');
          const extra = Object.keys(n).filter((k) => k !== 'host' && k !== 'port');
          if (extra.length) throw new TaasError('TAAS_CONFIG_INVALID', `config key ${at}.${extra[0]} is unknown; expected { host, port }`);
          const { host, port } = n as { host?: unknown; port?: unknown };
          if (typeof host !== 'string' || host.length === 0) throw bad(`${at}.host`, host, 'a non-empty string');
          return { host, port: coercePort(`${at}.port`, port, false) };
        });
        break;
      }
    }
  }
  return out as RedisOptions;
}

const CHALLENGES = ['tls-alpn-01', 'http-01', 'dns-01'] as const;
/** A DNS name an ACME CA can issue for (a wildcard only as `*.` in front). */
const DNS_NAME = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

/** Every key of an `acme` object: its kind and default, checked like the top-level keys. */
// Sub-keys follow their object (acme is restart-only as a whole), so they carry no reload class.
const ACME_SCHEMA: Record<keyof AcmeOptions, Omit<KeySpec, 'reload'>> = {
  directoryUrl: { kind: 'string' },
  email: { kind: 'string' },
  termsOfServiceAgreed: { kind: 'bool', default: false },
  caFile: { kind: 'string' },
  rootFile: { kind: 'string' },
  challenge: { kind: 'enum', values: CHALLENGES, default: 'tls-alpn-01' },
  http01Port: { kind: 'port' },
  dns01Hook: { kind: 'string' },
  wildcard: { kind: 'bool', default: false },
  names: { kind: 'string', default: [] },
  // Let's Encrypt's advice for its 90-day certificates: renew with a third left.
  renewBeforeDays: { kind: 'number', default: 30, min: 0, max: 365 },
  // Hourly: a renewal is due weeks ahead, and another node's certificate is seen within the hour.
  checkInterval: { kind: 'number', default: 3600, min: 1, max: 86400 },
};

/** An `acme` object's sub-keys validated (unknown ones refused), defaults filled, as a new object. */
function acmeOptions(raw: Record<string, unknown>): AcmeOptions {
  for (const sub of Object.keys(raw)) {
    if (!Object.hasOwn(ACME_SCHEMA, sub)) {
      throw new TaasError('TAAS_CONFIG_INVALID', `config key acme.${sub} is unknown; an acme object takes ${Object.keys(ACME_SCHEMA).join(', ')}`);
    }
  }
  const out: Record<string, unknown> = {};
  for (const [sub, spec] of Object.entries(ACME_SCHEMA) as [keyof AcmeOptions, KeySpec][]) {
    const key = `acme.${sub}`;
    const v = raw[sub];
    if (v === undefined || v === null) {
      if (spec.default !== undefined) out[sub] = spec.default;
      continue;
    }
    if (sub === 'names') {
      if (!Array.isArray(v) || v.some((n) => typeof n !== 'string' || n.length > 253 || !DNS_NAME.test(n))) throw bad(key, v, 'an array of DNS names');
      out[sub] = v.map((n: string) => n.toLowerCase());
      continue;
    }
    switch (spec.kind) {
      case 'string':
        if (typeof v !== 'string' || v.length === 0) throw bad(key, v, 'a non-empty string');
        out[sub] = v;
        break;
      case 'bool':
        if (typeof v === 'boolean') out[sub] = v;
        else if (v === 'true' || v === 'false') out[sub] = v === 'true';
        else throw bad(key, v, 'true or false');
        break;
      case 'enum':
        if (typeof v !== 'string' || !spec.values!.includes(v)) throw bad(key, v, spec.values!.join(' | '));
        out[sub] = v;
        break;
      case 'port':
        out[sub] = coercePort(key, v, true);
        break;
      default:
        out[sub] = coerceNumber(key, v, spec, false);
    }
  }
  const a = out as unknown as AcmeOptions;
  if (a.directoryUrl === undefined) throw bad('acme.directoryUrl', 'missing', 'the https:// URL of the ACME directory');
  if (!/^https:\/\/[^\s/]+/.test(a.directoryUrl)) throw bad('acme.directoryUrl', a.directoryUrl, 'an https:// URL');
  if (a.email !== undefined && !/^[^\s@]+@[^\s@]+$/.test(a.email)) throw bad('acme.email', a.email, 'an e-mail address');
  if (!a.termsOfServiceAgreed) throw bad('acme.termsOfServiceAgreed', a.termsOfServiceAgreed, "true (ordering a certificate means agreeing to the CA's terms of service)");
  if (a.challenge === 'http-01' && a.http01Port === undefined) throw bad('acme.http01Port', 'missing', 'a port for the HTTP-01 listener when acme.challenge is http-01');
  if (a.challenge === 'dns-01' && a.dns01Hook === undefined) throw bad('acme.dns01Hook', 'missing', 'a command when acme.challenge is dns-01');
  if (a.wildcard && a.challenge !== 'dns-01') throw bad('acme.wildcard', true, 'false unless acme.challenge is dns-01 (CAs prove wildcards by DNS only)');
  return a;
}

/** Freezes a value and everything in it: no part can change the config another part reads. */
function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * Validates a raw object (file values already merged with env overrides) and returns the
 * complete, frozen config. Unknown keys are refused with a hint for near misses.
 */
export function validate(raw: Record<string, unknown>): Readonly<Config> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(raw)) {
    // Own keys only: `key in SCHEMA` would take inherited names (constructor, toString) as known.
    if (!Object.hasOwn(SCHEMA, key)) {
      const hint = CONFIG_KEYS.find((k) => k.toLowerCase() === key.toLowerCase());
      throw new TaasError('TAAS_CONFIG_INVALID', `config key ${key} is unknown${hint ? `; did you mean ${hint}?` : ''}`);
    }
  }
  for (const key of CONFIG_KEYS) {
    const v = raw[key];
    if (v === undefined || v === null) {
      if (SCHEMA[key].default !== undefined) out[key] = SCHEMA[key].default;
      continue;
    }
    out[key] = coerce(key, v);
  }
  const cfg = out as unknown as Config;
  if (cfg.lockoutMax < cfg.lockoutBase) throw bad('lockoutMax', cfg.lockoutMax, `a number >= lockoutBase (${cfg.lockoutBase})`);
  if ((cfg.keyFile === undefined) !== (cfg.certFile === undefined)) {
    throw bad(cfg.keyFile === undefined ? 'keyFile' : 'certFile', 'missing', 'keyFile and certFile set together');
  }
  if ((cfg.adminKeyFile === undefined) !== (cfg.adminCertFile === undefined)) {
    throw bad(cfg.adminKeyFile === undefined ? 'adminKeyFile' : 'adminCertFile', 'missing', 'adminKeyFile and adminCertFile set together');
  }
  if ((cfg.keyData === undefined) !== (cfg.crtData === undefined)) {
    throw bad(cfg.keyData === undefined ? 'keyData' : 'crtData', 'missing', 'keyData and crtData set together');
  }
  if (cfg.acme && net.isIP(cfg.namedRegistrar.replace(/^\[|\]$/g, ''))) {
    throw bad('namedRegistrar', cfg.namedRegistrar, 'a DNS name when acme is set (ACME CAs issue for names)');
  }
  if (cfg.locationHost === undefined && embeddedNames(raw)) cfg.locationHost = '{label}.localhost';
  return deepFreeze(cfg);
}

/**
 * The embedded names are in use (taasHost, namedServers and advertiseHost all left to their
 * defaults): `*.localhost` resolves to loopback everywhere (RFC 6761; curl and browsers do it
 * themselves), where the relay then listens, so a mobile client can be sent to the label's own
 * name and check its hidden server's certificate (`LABEL.localhost`) after the 307. A config
 * that names its host keeps Location on that host unless it sets locationHost.
 */
function embeddedNames(raw: Record<string, unknown>): boolean {
  return (['taasHost', 'namedServers', 'advertiseHost'] as const).every((k) => raw[k] === undefined || raw[k] === null);
}

/** TAAS_<UPPER_SNAKE> for a config key: portRange → TAAS_PORT_RANGE. */
export function envName(key: string): string {
  return 'TAAS_' + key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}
