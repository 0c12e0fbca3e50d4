/** Labels, IDs and Host values: validation and normalisation. */
import { MAX_ID_LENGTH, MAX_LABEL_LENGTH, RESERVED_LABELS } from './limits.js';

/** A DNS label (RFC 1123): letters, digits, inner hyphens, 1–63 chars. Lowercase only after normalising. */
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** IDs: UUIDs and operator-chosen names of letters, digits, '-', '_' and '.'. */
const ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function normaliseLabel(raw: string): string {
  return raw.toLowerCase();
}

export function isValidLabel(label: string): boolean {
  return label.length <= MAX_LABEL_LENGTH && LABEL.test(label);
}

export function isReservedLabel(label: string, namedRegistrar?: string): boolean {
  if (RESERVED_LABELS.has(label)) return true;
  // The first label of the registrar's own name cannot be a hidden server's label.
  return namedRegistrar !== undefined && namedRegistrar.toLowerCase().split('.')[0] === label;
}

export function isValidId(id: string): boolean {
  return id.length > 0 && id.length <= MAX_ID_LENGTH && ID.test(id);
}

/**
 * Normalises a Host header: lowercase, port stripped, trailing dot dropped, IPv6 brackets
 * removed. Returns null for anything that is not a plausible host name or literal.
 */
export function normaliseHost(raw: string | undefined): string | null {
  if (raw === undefined) return null;
  let h = raw.trim().toLowerCase();
  if (h.length === 0 || h.length > 300) return null;
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    if (end < 0) return null;
    const rest = h.slice(end + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return null;
    h = h.slice(1, end);
    return /^[0-9a-f:.]+$/.test(h) ? h : null;
  }
  const colon = h.lastIndexOf(':');
  if (colon >= 0) {
    if (!/^\d{1,5}$/.test(h.slice(colon + 1))) return null;
    h = h.slice(0, colon);
  }
  if (h.endsWith('.')) h = h.slice(0, -1);
  if (h.length === 0 || h.length > 253) return null;
  return /^[a-z0-9.-]+$/.test(h) && !h.includes('..') ? h : null;
}

export type HostRoute = { kind: 'registrar' } | { kind: 'label'; label: string } | { kind: 'unknown' };

/** Decides what a request is for from its normalised Host. */
export function routeHost(host: string | null, namedRegistrar: string, namedServers: string): HostRoute {
  if (host === null) return { kind: 'unknown' };
  if (host === namedRegistrar.toLowerCase()) return { kind: 'registrar' };
  const suffix = '.' + namedServers.toLowerCase();
  if (host.endsWith(suffix)) {
    const label = host.slice(0, -suffix.length);
    if (isValidLabel(label)) return { kind: 'label', label };
  }
  return { kind: 'unknown' };
}
