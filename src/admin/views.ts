/** What the API shows of stored things: never a secret after creation. */
import type { LabelPolicy } from '../protocol/policy.js';
import type { ClientMode, Entry } from '../store/types.js';

export interface PublicEntry {
  id: string;
  labels: string[];
  clientPorts: Record<string, number>;
  /** label → traffic policy (labels without one are absent: the config's defaultPolicy applies). */
  policies: Record<string, LabelPolicy>;
  /** label → redirect | passthrough; a label not named is redirect. */
  clientMode: Record<string, ClientMode>;
  createdAt: string;
  updatedAt: string;
  version: number;
}

export function publicEntry(e: Entry): PublicEntry {
  return { id: e.id, labels: [...e.labels], clientPorts: { ...e.clientPorts }, policies: structuredClone(e.policies ?? {}), clientMode: { ...(e.clientMode ?? {}) }, createdAt: e.createdAt, updatedAt: e.updatedAt, version: e.version };
}
