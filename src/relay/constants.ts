/**
 * Relay-internal bounds that are not operator settings, each with the reason for its value.
 * (Operator settings live in the Config; wire-format limits in src/protocol/limits.ts.)
 */

/**
 * How long a connection to an allocated port may take to send its `TAAS-Cookie` line. An agent
 * sends it with its first write, so one round trip suffices; 5 s covers slow mobile links
 * without letting a silent stranger hold a candidate slot for the whole registration time.
 */
export const COOKIE_WAIT_MS = 5000;
/** ...and never more than this share of the registration's own time, so one can follow. */
export const COOKIE_WAIT_SHARE = 0.5;

/**
 * With allowCookieless, how long a silent connection is given before it is taken as an
 * original-protocol responder (which never speaks first). Short, because such a responder
 * waits silently; long enough for an agent's cookie line to arrive on a busy host.
 */
export const COOKIELESS_GRACE_MS = 300;

/** Connections one allocated port examines at once; beyond this the oldest one is closed. */
export const MAX_CANDIDATES_PER_REGISTRATION = 8;

/**
 * Octets a waiting mobile client may send before it is paired (a TLS ClientHello is ~0.5–2 KB);
 * beyond this its socket is paused, which TCP turns into backpressure, never a drop.
 */
export const WAITING_CLIENT_BUFFER_BYTES = 64 * 1024;

/*
 * TCP keepalive on idle responders is config.responderKeepalive (seconds of silence before the
 * first probe); libuv (1.46, in Node 20) then probes every 1 s, 10 times (seen with strace:
 * TCP_KEEPINTVL 1, TCP_KEEPCNT 10), so a hidden server that vanished without a packet leaves
 * the pool about responderKeepalive + 10 s after it went quiet. TCP_USER_TIMEOUT (the same
 * bound for unacknowledged data) cannot be set from Node itself; responders.ts sets it on each
 * accepted responder through engines/socket-options.ts (the native addon, where it is built).
 */

/** Paths remembered per label (address → last path), and for how long: a 307 is followed at once. */
export const PATHS_PER_LABEL = 1024;
export const PATH_TTL_MS = 60_000;
