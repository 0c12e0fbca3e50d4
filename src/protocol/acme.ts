/**
 * The ACME wire details this relay answers (RFC 8555 §8.3 HTTP-01, RFC 8737 TLS-ALPN-01):
 * the ALPN protocol name a validator offers, the HTTP-01 path, and what a challenge token may
 * look like. Nothing else in the project spells these octets.
 */

/** RFC 8737 §6.2: the ALPN protocol a TLS-ALPN-01 validator offers, alone. */
export const ACME_TLS_ALPN = 'acme-tls/1';

/** RFC 8555 §8.3: where an HTTP-01 validator asks for the key authorization. */
export const HTTP01_PREFIX = '/.well-known/acme-challenge/';

/**
 * RFC 8555 §8.1: a token is base64url (no padding) with at least 128 bits of entropy. 256
 * characters bounds what a hostile request can make us look up.
 */
const TOKEN = /^[A-Za-z0-9_-]{16,256}$/;

/** The token of an HTTP-01 request path, or null when the path is not one. */
export function http01Token(path: string): string | null {
  if (!path.startsWith(HTTP01_PREFIX)) return null;
  const token = path.slice(HTTP01_PREFIX.length);
  return TOKEN.test(token) ? token : null;
}

/** RFC 8555 §8.4: the DNS-01 record name for a domain (a wildcard's is its base domain's). */
export function dns01RecordName(domain: string): string {
  return `_acme-challenge.${domain.replace(/^\*\./, '')}`;
}
