/**
 * JSON Patch (RFC 6902) on an entry. A patch works on the entry's public form
 * `{ id, labels, clientPorts, policies, clientMode, createdAt, updatedAt, version }`; only labels,
 * clientPorts, policies and clientMode may change (`/policies/LABEL` is a label's traffic policy).
 * A patch that cannot apply (failed test, bad path), or that would change a read-only
 * member, is TAAS_PATCH_INVALID (422); the result is then checked by the entry service like
 * any other write (TAAS_ENTRY_INVALID, TAAS_LABEL_INVALID, TAAS_LABEL_TAKEN).
 */
import jsonpatch from 'fast-json-patch';
import { TaasError } from '../errors.js';
import type { LabelPolicy } from '../protocol/policy.js';
import type { ClientMode, Entry } from '../store/types.js';
import { publicEntry } from './views.js';

const WRITABLE = ['/labels', '/clientPorts', '/policies', '/clientMode'];

function writable(path: unknown): boolean {
  return typeof path === 'string' && WRITABLE.some((w) => path === w || path.startsWith(w + '/'));
}

export function applyEntryPatch(e: Entry, ops: unknown): { labels: string[]; clientPorts: Record<string, number>; policies: Record<string, LabelPolicy>; clientMode: Record<string, ClientMode> } {
  if (!Array.isArray(ops)) throw new TaasError('TAAS_BAD_REQUEST', 'a JSON Patch is an array of operations');
  if (ops.length > 100) throw new TaasError('TAAS_BAD_REQUEST', 'a JSON Patch may hold at most 100 operations');
  for (const op of ops as Record<string, unknown>[]) {
    if (!op || typeof op !== 'object') throw new TaasError('TAAS_BAD_REQUEST', 'each JSON Patch operation is an object');
    if (op.op !== 'test' && !writable(op.path)) throw new TaasError('TAAS_PATCH_INVALID', `${String(op.path)} is read-only; a patch may change /labels, /clientPorts, /policies and /clientMode`);
    if (op.op === 'move' && !writable(op.from)) throw new TaasError('TAAS_PATCH_INVALID', `${String(op.from)} is read-only`);
  }
  const doc = structuredClone(publicEntry(e)) as unknown as Record<string, unknown>;
  let out: Record<string, unknown>;
  try {
    out = jsonpatch.applyPatch(doc, ops as jsonpatch.Operation[], true, true, true).newDocument;
  } catch (err) {
    const name = (err as { name?: string }).name ?? '';
    const msg = (err as Error).message?.split('\n')[0] ?? 'cannot apply';
    throw new TaasError('TAAS_PATCH_INVALID', `the patch does not apply: ${name ? name + ': ' : ''}${msg}`);
  }
  const labels = out.labels;
  const clientPorts = out.clientPorts ?? {};
  if (!Array.isArray(labels) || !labels.every((l) => typeof l === 'string')) throw new TaasError('TAAS_ENTRY_INVALID', 'labels must stay a list of labels');
  if (!clientPorts || typeof clientPorts !== 'object' || Array.isArray(clientPorts)) throw new TaasError('TAAS_ENTRY_INVALID', 'clientPorts must stay an object of label → port');
  const policies = out.policies ?? {};
  if (!policies || typeof policies !== 'object' || Array.isArray(policies)) throw new TaasError('TAAS_POLICY_INVALID', 'policies must stay an object of label → policy');
  const clientMode = out.clientMode ?? {};
  if (!clientMode || typeof clientMode !== 'object' || Array.isArray(clientMode)) throw new TaasError('TAAS_ENTRY_INVALID', 'clientMode must stay an object of label → redirect | passthrough');
  // Each policy is then validated by the entry service (TAAS_POLICY_INVALID naming the member).
  return { labels, clientPorts: clientPorts as Record<string, number>, policies: policies as Record<string, LabelPolicy>, clientMode: clientMode as Record<string, ClientMode> };
}
