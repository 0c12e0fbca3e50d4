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
