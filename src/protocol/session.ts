/**
 * Session tokens for further registrations. The replay guard accepts a TOTP code once per ID
 * and time step, so a hidden server keeping a pool of N registrations open cannot use a code
 * for each. A successful registration therefore returns `TAAS-Session: <token>`, and the next
 * ones may send `Authorization: TAAS-Session username="ID", token="<token>"`.
 * The token is `v1.<expiry epoch s>.<nonce>.<mac>`; the MAC (HMAC-SHA256 keyed with the ID's
 * TOTP secret) covers the ID, expiry, nonce and, when bound, the source address. Any node can
 * verify it without shared state; rotating the secret or deleting the entry revokes it.
 */
import crypto from 'node:crypto';
import { TaasError } from '../errors.js';
import { MAX_AUTH_HEADER_LENGTH } from './limits.js';
import { isValidId } from './names.js';

export const SESSION_HEADER = 'taas-session';

export interface SessionCredential {
  id: string;
  token: string;
}

export function formatSessionAuthorization(c: SessionCredential): string {
  return `TAAS-Session username="${c.id}", token="${c.token}"`;
}

/** Parses `TAAS-Session username="ID", token="TOKEN"`; TAAS_AUTH_MALFORMED otherwise. */
export function parseSessionAuthorization(value: string): SessionCredential {
  const malformed = (why: string) => new TaasError('TAAS_AUTH_MALFORMED', `malformed Authorization header: ${why}`);
  if (value.length > MAX_AUTH_HEADER_LENGTH) throw malformed('too long');
  const m = /^TAAS-Session\s+username\s*=\s*"([^"\r\n]*)"\s*,\s*token\s*=\s*"([A-Za-z0-9._-]{1,200})"\s*$/i.exec(value.trim());
  if (!m) throw malformed('expected TAAS-Session username="ID", token="TOKEN"');
  if (!isValidId(m[1]!)) throw malformed('username is not a valid ID');
  return { id: m[1]!, token: m[2]! };
}

/** Which scheme an Authorization header uses, without parsing the rest. */
export function authScheme(value: string): 'totp' | 'session' | 'other' {
  const s = value.trimStart().slice(0, 13).toLowerCase();
  if (s.startsWith('totp ') || s === 'totp') return 'totp';
  if (s.startsWith('taas-session ')) return 'session';
  return 'other';
}

function mac(secret: string, id: string, expiry: number, nonce: string, address: string): string {
  return crypto.createHmac('sha256', secret).update(`${id}\n${expiry}\n${nonce}\n${address}`).digest('base64url');
}

/** Issues a token for `id`, valid `lifetimeSeconds`, bound to `address` ('' = unbound). */
export function issueSessionToken(secret: string, id: string, lifetimeSeconds: number, address: string, nowMs = Date.now()): string {
  const expiry = Math.floor(nowMs / 1000) + Math.ceil(lifetimeSeconds);
  const nonce = crypto.randomBytes(9).toString('base64url');
  return `v1.${expiry}.${nonce}.${mac(secret, id, expiry, nonce, address)}`;
}

/** True when the token is genuine, unexpired and (when bound) presented from `address`. Constant-time MAC check. */
export function verifySessionToken(secret: string, id: string, token: string, address: string, nowMs = Date.now()): boolean {
  const parts = token.split('.');
  if (parts.length !== 4 || parts[0] !== 'v1' || !/^\d{1,12}$/.test(parts[1]!)) return false;
  const expiry = Number(parts[1]);
  if (expiry * 1000 < nowMs) return false;
  const want = Buffer.from(mac(secret, id, expiry, parts[2]!, address));
  const got = Buffer.from(parts[3]!);
  return want.length === got.length && crypto.timingSafeEqual(want, got);
}

/** The expiry (epoch ms) a token carries, for a holder deciding when to renew; null if unreadable. Not a verification. */
export function sessionTokenExpiry(token: string): number | null {
  const m = /^v1\.(\d{1,12})\./.exec(token);
  return m ? Number(m[1]) * 1000 : null;
}
