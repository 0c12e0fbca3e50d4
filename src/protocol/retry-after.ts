/** `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date. */

/** Seconds to wait, never negative; null when the value is absent or neither form. */
export function parseRetryAfter(value: string | undefined, nowMs = Date.now()): number | null {
  if (value === undefined) return null;
  const v = value.trim();
  if (/^\d{1,10}$/.test(v)) return Number(v);
  const at = Date.parse(v);
  if (!Number.isFinite(at) || !/[A-Za-z]/.test(v)) return null;
  return Math.max(0, Math.ceil((at - nowMs) / 1000));
}

/**
 * The `Retry-After` value we send for a wait of `seconds`: whole seconds rounded up, at least 1
 * (a `0` would invite an immediate retry of what was just refused). The registrar and the admin
 * API both write it through here.
 */
export function formatRetryAfter(seconds: number): string {
  return String(Math.max(1, Math.ceil(seconds)));
}
