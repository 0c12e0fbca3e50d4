/**
 * Wire-level constants. Every size and time bound that applies before authentication
 * that is not an operator setting lives here, each with the reason for its value.
 */

/** RFC 1035 label length. */
export const MAX_LABEL_LENGTH = 63;
/** IDs are UUIDs in practice; 128 leaves room for operator-chosen ids without inviting abuse. */
export const MAX_ID_LENGTH = 128;
/** A TOTP response is 6–10 digits (RFC 4226 allows up to 10). */
export const MAX_TOKEN_LENGTH = 10;
/** The Authorization header is ~100 bytes for a UUID; 512 bounds parser work. */
export const MAX_AUTH_HEADER_LENGTH = 512;
/** 18 random bytes = 144 bits (DESIGN asks for at least 128), 24 base64url chars, no padding. */
export const COOKIE_BYTES = 18;
/** "TAAS-Cookie " + token + CRLF; anything longer on an allocated port is not a cookie line. */
export const MAX_COOKIE_LINE = 128;
/** Prefix an agent sends first on its allocated port. */
export const COOKIE_PREFIX = 'TAAS-Cookie ';
/** Names the registrar refuses as labels: they would shadow the registrar or common infra names. */
export const RESERVED_LABELS: ReadonlySet<string> = new Set(['registrar', 'www', 'admin', 'api', 'localhost', 'wildcard']);
/** Pairings kept per label. */
export const PAIRINGS_PER_LABEL = 100;
/** Registration attempts kept per ID. */
export const ATTEMPTS_PER_ID = 100;
/**
 * The largest ClientHello (handshake header included) the shared port reads to route a
 * connection: one full TLS record. Browsers send 0.5–2 KB (with post-quantum key shares);
 * anything bigger is not a client we route.
 */
export const MAX_CLIENT_HELLO_BYTES = 16384;
/**
 * Octets the shared port reads before it must know what a connection is: the largest
 * ClientHello plus the headers of a few records it may be split into (16 × 5 octets).
 */
export const MAX_CLASSIFY_BYTES = MAX_CLIENT_HELLO_BYTES + 80;
/**
 * Milliseconds a connection to the shared port has to send its first octets (a ClientHello or
 * a cookie line). Both go with the first write after the TCP handshake, so one round trip is
 * enough; 5 s covers slow mobile links, as the allocated port's wait for a cookie does.
 */
export const CLASSIFY_TIMEOUT_MS = 5000;
