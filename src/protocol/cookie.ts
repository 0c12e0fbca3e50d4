/**
 * The per-registration cookie: the registrar returns it in `TAAS-Cookie: <token>` with the 200;
 * the hidden server sends `TAAS-Cookie <token>\r\n` as the first bytes on its allocated port.
 */
import crypto from 'node:crypto';
import { COOKIE_BYTES, COOKIE_PREFIX, MAX_COOKIE_LINE } from './limits.js';

export const COOKIE_HEADER = 'taas-cookie';

export function newCookie(): string {
  return crypto.randomBytes(COOKIE_BYTES).toString('base64url');
}

export function formatCookieLine(token: string): string {
  return `${COOKIE_PREFIX}${token}\r\n`;
}

export function isCookieToken(s: string): boolean {
  return s.length >= 22 && s.length <= 100 && /^[A-Za-z0-9_-]+$/.test(s);
}

export type CookieScan =
  | { kind: 'need-more' }
  /** The first bytes are not a cookie line (an original-protocol hidden server, or a stranger). */
  | { kind: 'absent' }
  | { kind: 'malformed' }
  /** `rest` holds whatever followed the line (it belongs to the hidden server's stream). */
  | { kind: 'cookie'; token: string; rest: Buffer };

/** Looks at the first bytes received on an allocated port. */
export function scanCookieLine(buf: Buffer): CookieScan {
  const prefix = Buffer.from(COOKIE_PREFIX, 'ascii');
  const n = Math.min(buf.length, prefix.length);
  if (!buf.subarray(0, n).equals(prefix.subarray(0, n))) return { kind: 'absent' };
  const nl = buf.indexOf(0x0a);
  if (nl < 0) return buf.length >= MAX_COOKIE_LINE ? { kind: 'malformed' } : { kind: 'need-more' };
  if (nl + 1 > MAX_COOKIE_LINE || nl < 1 || buf[nl - 1] !== 0x0d) return { kind: 'malformed' };
  const token = buf.subarray(prefix.length, nl - 1).toString('latin1');
  if (!isCookieToken(token)) return { kind: 'malformed' };
  return { kind: 'cookie', token, rest: buf.subarray(nl + 1) };
}

/** Constant-time comparison of two cookie tokens. */
export function cookieEquals(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}
