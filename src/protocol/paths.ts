/** Registrar paths. Nothing is percent-decoded: a label must be plain DNS characters. */
import { normaliseLabel, isValidLabel } from './names.js';

export type RegistrarPath = { kind: 'register' | 'pairings'; label: string } | { kind: 'invalid-label' } | { kind: 'none' };

/** `/register/LABEL` and `/pairings/LABEL`, with an optional query ignored. */
export function parseRegistrarPath(rawUrl: string): RegistrarPath {
  if (rawUrl.length > 2048) return { kind: 'none' };
  const q = rawUrl.indexOf('?');
  const path = q >= 0 ? rawUrl.slice(0, q) : rawUrl;
  const m = /^\/(register|pairings)\/([^/]*)\/?$/.exec(path);
  if (!m) return { kind: 'none' };
  const label = normaliseLabel(m[2]!);
  if (!isValidLabel(label)) return { kind: 'invalid-label' };
  return { kind: m[1] as 'register' | 'pairings', label };
}
