/**
 * One registration over HTTPS: `PUT /register/LABEL` to a registrar, trusting only the pinned
 * CA, with the registrar's name as TLS server name and Host. Follows 3xx for a bounded number
 * of hops and sorts every other answer into an outcome the pool knows how to act on.
 */
import https from 'node:https';
import net from 'node:net';
import { checkServerIdentity } from 'node:tls';
import { COOKIE_HEADER, SESSION_HEADER, isCookieToken, parseEndpoint, parseRetryAfter } from '../protocol/index.js';

/** Where a request goes: the address to connect to and the name to present and verify. */
export interface RegistrarTarget {
  host: string;
  port: number;
  servername: string;
}

export type RegisterOutcome =
  | { kind: 'ok'; endpoint: { host: string; port: number }; cookie: string | null; session: string | null }
  /** 429/503: the relay asks for a pause; seconds is null when it gave no usable Retry-After. */
  | { kind: 'retry-after'; status: number; seconds: number | null }
  /** A refusal that retrying soon will not fix (401, 404, other 4xx). */
  | { kind: 'refused'; status: number; reason: string }
  /** The registrar's certificate does not verify against the pinned CA. */
  | { kind: 'untrusted'; reason: string }
  /** Connection refused, reset, timed out: the relay is down or restarting. `unsent`: the request provably never left. */
  | { kind: 'unreachable'; reason: string; unsent?: boolean }
  /** An answer that breaks the protocol (bad body, redirect loop, 5xx). */
  | { kind: 'bad-response'; reason: string };

export interface RegisterRequest {
  target: RegistrarTarget;
  label: string;
  authorization: string;
  /** PEM of the relay's CA: the only certificate trusted. */
  ca: string;
  timeoutMs: number;
  maxHops?: number;
  signal?: AbortSignal;
  /** A keep-alive agent saves a TLS handshake per registration when a pool refills; default: a fresh connection. */
  agent?: https.Agent;
}

/** A registrar answers with a few dozen bytes; anything longer is not a registrar. */
const MAX_BODY_BYTES = 4096;
/** Enough for a relay that forwards through a node or two; bounded so a loop cannot hold the agent. */
export const MAX_REDIRECT_HOPS = 5;

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Errors raised before a connection existed: no request (and no code) reached anyone. */
const NEVER_CONNECTED = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL']);
const TLS_TRUST_ERRORS = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ERR_TLS_CERT_ALTNAME|HOSTNAME/;

function exchange(req: RegisterRequest, target: RegistrarTarget, path: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const r = https.request({
      host: target.host,
      port: target.port,
      servername: net.isIP(target.servername) ? undefined : target.servername,
      method: 'PUT',
      path,
      ca: req.ca,
      agent: req.agent ?? false,
      timeout: req.timeoutMs,
      signal: req.signal,
      headers: { host: target.servername, authorization: req.authorization, 'content-length': '0' },
      // Verify the certificate against the registrar's name, whatever address was dialled.
      checkServerIdentity: (_host, cert) => checkServerIdentity(target.servername, cert),
    });
    r.on('timeout', () => r.destroy(Object.assign(new Error(`no answer within ${req.timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    r.on('error', (e: NodeJS.ErrnoException) => {
      // A kept-alive connection the registrar closed just as it was reused (restart, idle
      // timeout): the request never reached it, so one retry on a new connection is safe.
      if (r.reusedSocket && (e.code === 'ECONNRESET' || e.code === 'EPIPE') && !req.signal?.aborted) {
        exchange({ ...req, agent: undefined }, target, path).then(resolve, reject);
      } else reject(e);
    });
    r.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY_BYTES) res.destroy(new Error(`answer body longer than ${MAX_BODY_BYTES} bytes`));
        else chunks.push(c);
      });
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    r.end();
  });
}

function header(h: RawResponse['headers'], name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

function classifyError(e: unknown): RegisterOutcome {
  const err = e as NodeJS.ErrnoException;
  const code = err.code ?? '';
  const reason = `${code ? code + ': ' : ''}${err.message}`;
  if (TLS_TRUST_ERRORS.test(code)) return { kind: 'untrusted', reason };
  return { kind: 'unreachable', reason, ...(NEVER_CONNECTED.has(code) ? { unsent: true } : {}) };
}

/** The next hop of a 3xx: an address literal keeps the registrar's name; a host name becomes the name. */
function redirectTarget(location: string, from: RegistrarTarget, path: string): { target: RegistrarTarget; path: string } | null {
  // A path-only Location stays on the registrar that sent it.
  if (/^\/(?!\/)/.test(location)) {
    const rel = new URL(location, 'https://relative.invalid');
    return { target: from, path: rel.pathname + rel.search };
  }
  let u: URL;
  try {
    u = new URL(location, `https://${from.servername}:${from.port}${path}`);
  } catch {
    return null;
  }
  if (u.protocol !== 'https:') return null;
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = u.port === '' ? 443 : Number(u.port);
  const target = net.isIP(host) ? { host, port, servername: from.servername } : { host, port, servername: host };
  return { target, path: u.pathname + u.search };
}

/** Registers once for `label`, following redirects. Never throws except on abort. */
export async function register(req: RegisterRequest): Promise<RegisterOutcome> {
  let target = req.target;
  let path = `/register/${req.label}`;
  const maxHops = req.maxHops ?? MAX_REDIRECT_HOPS;
  for (let hop = 0; ; hop++) {
    let res: RawResponse;
    try {
      res = await exchange(req, target, path);
    } catch (e) {
      if (req.signal?.aborted) throw e;
      return classifyError(e);
    }
    const { status } = res;
    if (status === 200) {
      const endpoint = parseEndpoint(res.body);
      if (!endpoint) return { kind: 'bad-response', reason: `200 with a body that is not HOST:PORT (${JSON.stringify(res.body.slice(0, 60))})` };
      const cookie = header(res.headers, COOKIE_HEADER);
      const session = header(res.headers, SESSION_HEADER);
      return {
        kind: 'ok',
        endpoint,
        cookie: cookie !== undefined && isCookieToken(cookie.trim()) ? cookie.trim() : null,
        session: session !== undefined && /^[A-Za-z0-9._-]{1,200}$/.test(session.trim()) ? session.trim() : null,
      };
    }
    if (status >= 300 && status < 400) {
      const location = header(res.headers, 'location');
      if (hop >= maxHops) return { kind: 'bad-response', reason: `more than ${maxHops} redirects` };
      const next = location === undefined ? null : redirectTarget(location, target, path);
      if (!next) return { kind: 'bad-response', reason: `${status} without a usable https Location` };
      target = next.target;
      path = next.path;
      continue;
    }
    if (status === 429 || status === 503) return { kind: 'retry-after', status, seconds: parseRetryAfter(header(res.headers, 'retry-after')) };
    if (status >= 400 && status < 500) return { kind: 'refused', status, reason: errorMessage(res) };
    return { kind: 'bad-response', reason: `unexpected status ${status}` };
  }
}

/** The errorMsg of a JSON error body, or the first line of a text one; never more than a line. */
function errorMessage(res: RawResponse): string {
  try {
    const j = JSON.parse(res.body) as { errorMsg?: unknown };
    if (typeof j.errorMsg === 'string') return j.errorMsg.slice(0, 200);
  } catch {
    /* not JSON: fall through to text */
  }
  return (res.body.split('\n')[0] ?? '').slice(0, 200) || `status ${res.status}`;
}
