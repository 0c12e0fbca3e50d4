/** What the API shows of stored things: never a secret after creation. */
import type { LabelPolicy } from '../protocol/policy.js';
import type { Entry } from '../store/types.js';

export interface PublicEntry {
  id: string;
  labels: string[];
  clientPorts: Record<string, number>;
  /** label → traffic policy (labels without one are absent: the config's defaultPolicy applies). */
  policies: Record<string, LabelPolicy>;
  createdAt: string;
  updatedAt: string;
  version: number;
}

export function publicEntry(e: Entry): PublicEntry {
  return { id: e.id, labels: [...e.labels], clientPorts: { ...e.clientPorts }, policies: structuredClone(e.policies ?? {}), createdAt: e.createdAt, updatedAt: e.updatedAt, version: e.version };
}
