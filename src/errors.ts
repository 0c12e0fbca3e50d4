/**
 * Every error the project raises on purpose, in one place, each with a stable `code`.
 * Match on `code`, never on message text. `status` is the HTTP status where one applies.
 * The list in docs/errors.md is checked against ERROR_CODES by a test.
 */

export const ERROR_CODES = {
  // configuration and files
  TAAS_CONFIG_INVALID: 'a configuration key has a value outside what is allowed',
  TAAS_CONFIG_UNREADABLE: 'the configuration file cannot be read or evaluated',
  TAAS_FILE_UNREADABLE: 'a file the command needs cannot be read or parsed',
  TAAS_SECRET_KEY_MISMATCH: "the secret key file is not the one the store's secrets are sealed with",
  TAAS_ENGINE_UNAVAILABLE: 'the relay engine asked for cannot be loaded on this machine',
  // ACME certificates
  TAAS_ACME_ORDER_FAILED: 'the ACME CA did not issue the certificate (account, order, challenge or finalisation failed)',
  TAAS_ACME_HOOK_FAILED: 'the DNS-01 hook command failed or timed out',
  TAAS_ACME_STORED_INVALID: 'a stored ACME account key or certificate cannot be read',
  // registrar requests
  TAAS_AUTH_MISSING: 'no Authorization header',
  TAAS_AUTH_MALFORMED: 'the Authorization header is not TOTP username="ID", response="TKN"',
  TAAS_AUTH_FAILED: 'unknown ID or wrong code',
  TAAS_LABEL_NOT_GRANTED: 'the label is not granted to this ID',
  TAAS_LABEL_INVALID: 'the label is not a valid DNS label',
  TAAS_METHOD_NOT_ALLOWED: 'the method is not allowed on this path',
  TAAS_NOT_FOUND: 'no such path, label or host',
  TAAS_LOCKED_OUT: 'too many failed attempts; retry after the lock-out',
  TAAS_RATE_LIMITED: 'too many requests from this address',
  TAAS_NO_RESPONDER: 'no hidden server is registered for this label right now',
  TAAS_NO_PORT: 'no port is free in the configured range',
  TAAS_LIMIT_REACHED: 'a configured limit is reached',
  TAAS_STORE_UNAVAILABLE: 'the store cannot be reached',
  TAAS_DRAINING: 'this node is draining and takes no new registrations',
  TAAS_BAD_REQUEST: 'the request is malformed',
  // entries
  TAAS_ENTRY_NOT_FOUND: 'no entry with this ID',
  TAAS_ENTRY_EXISTS: 'an entry with this ID already exists',
  TAAS_ENTRY_INVALID: 'the entry would be invalid',
  TAAS_LABEL_TAKEN: 'the label belongs to another entry',
  TAAS_PRECONDITION_FAILED: 'the resource changed since the version the request names',
  // per-label policy
  TAAS_POLICY_INVALID: 'a label policy has a member outside what is allowed',
  TAAS_POLICY_DENIED: "the client's address is not allowed by the label's policy",
  TAAS_POLICY_LIMIT: "a limit of the label's policy is reached (pairings at once, per client, or rate)",
  TAAS_QUOTA_EXCEEDED: "the label has used its policy's quota of octets for the day (UTC)",
  // admin API
  TAAS_ADMIN_AUTH_REQUIRED: 'no API key, access token or session cookie came with the request',
  TAAS_ADMIN_AUTH_INVALID: 'the API key or token is unknown, expired or revoked',
  TAAS_FORBIDDEN: 'the credentials lack the permission this request needs, or the origin is not allowed',
  TAAS_CSRF_FAILED: 'a state-changing request authenticated by cookie lacks the matching X-CSRF-Token header',
  TAAS_PRECONDITION_REQUIRED: 'the change needs If-Match or If-Unmodified-Since',
  TAAS_UNSUPPORTED_MEDIA_TYPE: 'the request body has a media type this route does not take',
  TAAS_PATCH_INVALID: 'the JSON Patch cannot be applied to the resource',
  // restart (hand-over to a new daemon)
  TAAS_HANDOVER_UNAVAILABLE: 'no running daemon to hand over from, or this build cannot pass descriptors',
  TAAS_HANDOVER_REFUSED: 'the running daemon refused the hand-over (another format version, another user)',
  TAAS_HANDOVER_FAILED: 'the hand-over to the new daemon failed before it took ownership',
  TAAS_INTERNAL: 'an unexpected internal error',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Default HTTP status per code, used when an error crosses an HTTP boundary. */
const STATUS: Partial<Record<ErrorCode, number>> = {
  TAAS_AUTH_MISSING: 401,
  TAAS_AUTH_MALFORMED: 400,
  TAAS_AUTH_FAILED: 401,
  TAAS_LABEL_NOT_GRANTED: 404,
  TAAS_LABEL_INVALID: 400,
  TAAS_METHOD_NOT_ALLOWED: 405,
  TAAS_NOT_FOUND: 404,
  TAAS_LOCKED_OUT: 429,
  TAAS_RATE_LIMITED: 429,
  TAAS_NO_RESPONDER: 503,
  TAAS_NO_PORT: 503,
  TAAS_LIMIT_REACHED: 503,
  TAAS_STORE_UNAVAILABLE: 503,
  TAAS_DRAINING: 503,
  TAAS_BAD_REQUEST: 400,
  TAAS_ENTRY_NOT_FOUND: 404,
  TAAS_ENTRY_EXISTS: 409,
  TAAS_ENTRY_INVALID: 422,
  TAAS_LABEL_TAKEN: 409,
  TAAS_PRECONDITION_FAILED: 412,
  TAAS_POLICY_INVALID: 422,
  TAAS_POLICY_DENIED: 403,
  TAAS_POLICY_LIMIT: 429,
  TAAS_QUOTA_EXCEEDED: 429,
  TAAS_ADMIN_AUTH_REQUIRED: 401,
  TAAS_ADMIN_AUTH_INVALID: 401,
  TAAS_FORBIDDEN: 403,
  TAAS_CSRF_FAILED: 403,
  TAAS_PRECONDITION_REQUIRED: 428,
  TAAS_UNSUPPORTED_MEDIA_TYPE: 415,
  TAAS_PATCH_INVALID: 422,
};

export class TaasError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Seconds a client should wait before retrying (429/503). */
  readonly retryAfter?: number;

  constructor(code: ErrorCode, message?: string, opts: { status?: number; retryAfter?: number; cause?: unknown } = {}) {
    super(message ?? ERROR_CODES[code], opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'TaasError';
    this.code = code;
    this.status = opts.status ?? STATUS[code] ?? 500;
    if (opts.retryAfter !== undefined) this.retryAfter = opts.retryAfter;
  }
}

export function isTaasError(e: unknown, code?: ErrorCode): e is TaasError {
  return e instanceof TaasError && (code === undefined || e.code === code);
}

/** One line for a human: the message of a TaasError, or the message of anything else. */
export function oneLine(e: unknown): string {
  if (e instanceof Error) return e.message.split('\n')[0] ?? String(e);
  return String(e);
}
