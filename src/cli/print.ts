/** Human and JSON output of the CLI's listings. */
import { describePolicy, isEmptyPolicy, type LabelPolicy } from '../protocol/policy.js';
import type { PairingRecord } from '../store/types.js';
import type { EntryView } from './operator.js';

export function printEntries(entries: (EntryView & { secret?: string })[], json: boolean): void {
  if (json) {
    console.log(JSON.stringify(entries.map(({ secret: _s, ...e }) => e), null, 2));
    return;
  }
  if (entries.length === 0) {
    console.log('no entries');
    return;
  }
  for (const e of entries) {
    const ports = Object.entries(e.clientPorts).map(([l, p]) => `${l}=${p}`).join(',');
    const pass = Object.entries(e.clientMode ?? {}).filter(([, m]) => m === 'passthrough').map(([l]) => l).join(',');
    console.log(`${e.id}  ${e.labels.join(',')}${ports ? `  client ports ${ports}` : ''}${pass ? `  passthrough ${pass}` : ''}  created ${e.createdAt}`);
  }
}

export function printPairings(list: PairingRecord[], json: boolean): void {
  if (json) {
    console.log(JSON.stringify(list, null, 2));
    return;
  }
  if (list.length === 0) {
    console.log('no pairings recorded');
    return;
  }
  for (const p of list) {
    console.log(`${p.start}  ${p.client} -> ${p.responder}  ${p.path ?? '-'}  up ${p.bytesUp} B  down ${p.bytesDown} B  ${p.reason}`);
  }
}

/** `entries policy LABEL`: the label's own policy, or the default that applies for want of one. */
export function printPolicy(label: string, own: LabelPolicy | undefined, fallback: LabelPolicy | undefined, json: boolean): void {
  if (json) {
    console.log(JSON.stringify({ label, policy: own ?? null, applies: own ?? fallback ?? null, source: own ? 'entry' : fallback ? 'defaultPolicy' : 'none' }, null, 2));
    return;
  }
  if (own && !isEmptyPolicy(own)) {
    console.log(`policy of ${label}:`);
    for (const line of describePolicy(own)) console.log(`  ${line}`);
    return;
  }
  if (fallback && !isEmptyPolicy(fallback)) {
    console.log(`${label} has no policy of its own; the config's defaultPolicy applies:`);
    for (const line of describePolicy(fallback)) console.log(`  ${line}`);
    return;
  }
  console.log(`${label} has no policy (no limits beyond the relay's own)`);
}
