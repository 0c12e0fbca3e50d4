/**
 * Generates SECURITY.md's tables of limits from the code itself: the config limits from
 * src/config/schema.ts (defaults and ranges from SCHEMA, descriptions read from the doc
 * comments of the Config interface in the source text) and the fixed bounds from their
 * constants. security-doc.test.ts fails when SECURITY.md and this output differ, and when a
 * config key is neither listed here as a limit nor as "not a limit": a new key must be placed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SCHEMA, type Config } from '../../src/config/schema.js';
import * as P from '../../src/protocol/limits.js';
import * as R from '../../src/relay/constants.js';
import { MAX_POLICY_CIDRS } from '../../src/protocol/policy.js';
import { OUTBOX_LIMIT } from '../../src/store/outbox.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** What happens when each limit is hit (the documented answer). Order = table order. */
const WHEN_HIT: Partial<Record<keyof Config, string>> = {
  tlsHandshakeTimeout: 'connection closed',
  headersTimeout: '`408` where it can still be written, then close (checked every 250 ms)',
  maxHeaderBytes: '`431`, close',
  maxHeaders: '`431`, close',
  maxConnsPerAddress: 'further connections from that address closed at accept (registrar and relay ports each)',
  lockoutThreshold: '`429 TAAS_LOCKED_OUT` + `Retry-After`; even the right code is refused while locked',
  lockoutBase: '(length of the first lock; doubles per further failure)',
  lockoutMax: '(cap of the doubling)',
  failuresPerAddress: '`429 TAAS_RATE_LIMITED` + `Retry-After` until the minute ends',
  maxPendingPerId: '`503 TAAS_LIMIT_REACHED` + `Retry-After`',
  maxIdlePerLabel: '`503 TAAS_LIMIT_REACHED` + `Retry-After` (idle and pending responders together)',
  maxPorts: '`503 TAAS_LIMIT_REACHED` + `Retry-After`',
  portRange: '`503 TAAS_NO_PORT` + `Retry-After` when no port of the range is free',
  registrationTimeout: 'allocated port closed; the registration is gone',
  maxWaitingClients: 'mobile client connection closed (queue full)',
  clientWaitTimeout: 'waiting mobile client closed (0: refused at once when no responder is idle)',
  clientPortIdle: 'client port closed; the next request opens another',
  idleBufferBytes: 'idle responder paused (TCP backpressure), never a drop',
  pairingIdleTimeout: 'pairing closed (0 = off)',
  sessionLifetime: 'token refused; a fresh TOTP code is needed',
  codeReusePerStep: 'a further presentation of the step\'s code is a replay: `401`, counted toward lock-out',
  metricsLabelCap: 'further labels counted as "other" in metrics',
  defaultPolicy: 'mobile client refused: `403 TAAS_POLICY_DENIED`, `429 TAAS_POLICY_LIMIT` / `TAAS_QUOTA_EXCEEDED` at the registrar, a reset on relay ports (docs/policy.md)',
};

/** Security switches: not limits, but what the threat model rests on. */
const SWITCHES: Partial<Record<keyof Config, string>> = {
  checkSourceAddress: 'only the registering address may connect to its allocated port; session tokens are bound to it. Off only behind a proxy or NAT that changes the address.',
  allowCookieless: 'accept original-protocol hidden servers: no `TAAS-Cookie` line (still address-checked; anyone at the registering address could then take the port), and a TOTP code presented again within its own step from the same address bucket, up to `codeReusePerStep` (anyone in that bucket who sees the code in that step could then register once more).',
  secretKeyFile: 'the key that seals TOTP secrets at rest (default `<dataDir>/secret.key`, created 0600 on first start).',
  generateCert: 'with no certificate configured, generate one; `false` serves plain HTTP (codes then cross the network in clear).',
  adminKeyFile: 'with `adminCertFile`: HTTPS for the admin API. Without them it is plain HTTP: keep `adminHost` on loopback.',
  adminCertFile: 'see `adminKeyFile`.',
  sharedPort: 'one port (`taasPort`) for the registrar, responders (cookie line first) and SNI passthrough; each connection is classified within the fixed bounds below before anything else reads it. A passthrough label\'s hidden server faces mobile clients directly, as a client port\'s does.',
};

/** Config keys that bound nothing an attacker controls. */
export const NOT_LIMITS: readonly (keyof Config)[] = [
  'taasHost', 'taasPort', 'namedRegistrar', 'namedServers', 'keyFile', 'certFile', 'keyData', 'crtData', 'redis', 'dataDir',
  'advertiseHost', 'locationHost', 'adminHost', 'adminPort', 'logLevel', 'relayEngine', 'proxyProtocol', 'drainTimeout', 'heartbeatInterval', 'nodeId', 'responderKeepalive', 'acme',
];

export const LISTED: readonly (keyof Config)[] = [...Object.keys(WHEN_HIT), ...Object.keys(SWITCHES)] as (keyof Config)[];

/** The `/** ... *\/` comment right above each key of `interface Config`, flattened to one line. */
function docComments(): Map<string, string> {
  const src = fs.readFileSync(path.join(ROOT, 'src/config/schema.ts'), 'utf8');
  const body = /export interface Config \{([\s\S]*?)\n\}/.exec(src)![1]!;
  const out = new Map<string, string>();
  for (const m of body.matchAll(/\/\*\*([\s\S]*?)\*\/\s*\n\s*(\w+)\??:/g)) {
    out.set(m[2]!, m[1]!.replace(/\s*\n\s*\*?\s*/g, ' ').trim());
  }
  return out;
}

/** Descriptions for keys whose Config field has no doc comment. */
const FALLBACK: Partial<Record<keyof Config, string>> = {
  maxHeaderBytes: 'Bytes of request headers (the whole header block).',
  maxHeaders: 'Request headers per request.',
  maxConnsPerAddress: 'Concurrent connections per source address.',
  lockoutMax: 'Longest lock-out, seconds.',
  maxPendingPerId: 'Registrations of one ID waiting for their hidden server.',
  maxIdlePerLabel: 'Idle (and pending) responders per label.',
  maxPorts: 'Relay ports open at once (allocated and client ports).',
  maxWaitingClients: 'Mobile clients per label waiting for an idle responder.',
  portRange: 'Ports the relay allocates from.',
};

function fmtDefault(key: keyof Config): string {
  const d = SCHEMA[key].default;
  if (d === undefined) return '(none)';
  if (Array.isArray(d)) return d.join('-');
  return String(d);
}

function fmtRange(key: keyof Config): string {
  const s = SCHEMA[key];
  if (s.min === undefined && s.max === undefined) return '';
  return `${s.min ?? ''}..${s.max ?? ''}`;
}

const UNIT: Partial<Record<string, string>> = { number: 's', int: '' };

export function configLimitsTable(): string {
  const docs = docComments();
  const rows = ['| key | default | allowed | bounds | when hit |', '|---|---|---|---|---|'];
  for (const key of Object.keys(WHEN_HIT) as (keyof Config)[]) {
    const unit = UNIT[SCHEMA[key].kind] ?? '';
    const desc = (docs.get(key) ?? FALLBACK[key] ?? '').replace(/\|/g, '\\|');
    rows.push(`| \`${key}\` | ${fmtDefault(key)}${unit && SCHEMA[key].default !== undefined ? ' ' + unit : ''} | ${fmtRange(key)} | ${desc} | ${WHEN_HIT[key]} |`);
  }
  return rows.join('\n');
}

export function switchesTable(): string {
  const rows = ['| key | default | what it guards |', '|---|---|---|'];
  for (const key of Object.keys(SWITCHES) as (keyof Config)[]) rows.push(`| \`${key}\` | ${fmtDefault(key)} | ${SWITCHES[key]} |`);
  return rows.join('\n');
}

/** Bounds that are not settings: wire-format limits and relay internals, from their constants. */
export function fixedBoundsTable(): string {
  const rows: [string, string, string][] = [
    ['Authorization header length', `${P.MAX_AUTH_HEADER_LENGTH} bytes`, '`400 TAAS_AUTH_MALFORMED`'],
    ['TOTP response', `6-${P.MAX_TOKEN_LENGTH} digits`, '`400 TAAS_AUTH_MALFORMED`'],
    ['ID length', `${P.MAX_ID_LENGTH} characters`, '`400 TAAS_AUTH_MALFORMED`'],
    ['label length', `${P.MAX_LABEL_LENGTH} characters (DNS label)`, '`400 TAAS_LABEL_INVALID`'],
    ['registrar path length', '2048 characters', '`404`'],
    ['registration body', 'none allowed', '`400 TAAS_BAD_REQUEST`'],
    ['cookie', `${P.COOKIE_BYTES * 8} random bits, single use`, 'wrong or missing: connection closed, registration kept'],
    ['cookie line on an allocated port', `${P.MAX_COOKIE_LINE} bytes within ${R.COOKIE_WAIT_MS / 1000} s`, 'connection closed, registration kept'],
    ['connections examined at once per allocated port', String(R.MAX_CANDIDATES_PER_REGISTRATION), 'further ones closed at accept'],
    ['bytes a waiting mobile client may send before pairing', `${R.WAITING_CLIENT_BUFFER_BYTES / 1024} KiB`, 'client paused (TCP backpressure)'],
    ['replay guard', '3 TOTP steps (the ±1 window) per ID', 'a used step: `401`, logged as `replay`'],
    ['failure window per address', '60 s', 'see `failuresPerAddress`'],
    ['attempt log per ID', `${P.ATTEMPTS_PER_ID} records`, 'oldest dropped'],
    ['pairing history per label', `${P.PAIRINGS_PER_LABEL} records`, 'oldest dropped'],
    ['first octets on the shared port (`sharedPort`): a ClientHello or cookie line', `${P.MAX_CLASSIFY_BYTES} bytes (a ClientHello of at most ${P.MAX_CLIENT_HELLO_BYTES}) within ${P.CLASSIFY_TIMEOUT_MS / 1000} s`, 'silence or too slow: closed at the time bound; too large, malformed, neither TLS nor a cookie line, an unknown or spent cookie: closed at once; an SNI of a label no entry holds: TLS alert `unrecognized_name`, closed'],
    ['remembered request paths per label', `${R.PATHS_PER_LABEL}, ${R.PATH_TTL_MS / 1000} s`, 'oldest dropped'],
    ['CIDR blocks per allow or deny list of a label policy', String(MAX_POLICY_CIDRS), '`422 TAAS_POLICY_INVALID`'],
    ['rate buckets kept (a label policy\'s `rate`, per label and address bucket)', '100000', 'full ones swept, then the oldest dropped'],
    ['records waiting for the store during an outage', `${OUTBOX_LIMIT.toLocaleString('en')} (pairings and attempts)`, 'oldest dropped, counted in `taas_store_outbox_dropped_total`'],
  ];
  return ['| bound | value | when hit |', '|---|---|---|', ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/** The generated block as it stands between the markers in SECURITY.md. */
export function generatedBlock(): string {
  return [
    '<!-- limits:begin (generated by test/security/limits-table.ts; do not edit by hand) -->',
    '### Configurable limits',
    '',
    'Durations in seconds. Every key can also be set by its `TAAS_<KEY>` environment variable.',
    '',
    configLimitsTable(),
    '',
    '### Security switches',
    '',
    switchesTable(),
    '',
    '### Fixed bounds',
    '',
    fixedBoundsTable(),
    '<!-- limits:end -->',
  ].join('\n');
}
