/**
 * Moving entries between stores (embedded ⇄ Redis) as JSON lines: one entry per line,
 * `{"id","secret","labels","clientPorts","policies","clientMode","createdAt","updatedAt","version"}` (policies and clientMode only when set).
 *
 * The export holds the TOTP secrets IN PLAINTEXT (the SecretBox key of one store means nothing
 * to the other): whoever reads the file can register as every hidden server in it. Operators
 * must protect it like the secret key file (the CLI writes it mode 0600) and delete it after use.
 *
 * Import checks the whole input before changing anything (a malformed or contradictory file
 * changes nothing), then per entry: absent → created (timestamps kept, version 1), present and
 * identical → skipped, present and different → updated (secret, labels, client ports, policies, client modes replaced).
 */
import { validatePolicy, type LabelPolicy } from '../protocol/policy.js';
import { TaasError } from '../errors.js';
import { isValidId, isValidLabel } from '../protocol/names.js';
import { clientModeOf, type ClientMode, type Entry, type Store } from './types.js';

export interface ImportResult {
  created: number;
  updated: number;
  skipped: number;
}

/** One line per entry, each ending in "\n", oldest entry first. */
export async function* exportEntries(store: Store): AsyncIterable<string> {
  for (const e of await store.listEntries()) {
    const line: Entry = {
      id: e.id,
      secret: e.secret,
      labels: e.labels,
      clientPorts: e.clientPorts,
      ...(e.policies ? { policies: e.policies } : {}),
      ...(e.clientMode && Object.keys(e.clientMode).length ? { clientMode: e.clientMode } : {}),
      createdAt: e.createdAt,
      updatedAt: e.updatedAt,
      version: e.version,
    };
    yield JSON.stringify(line) + '\n';
  }
}

const BASE32 = /^[A-Z2-7]+=*$/;

function bad(lineNo: number, why: string): TaasError {
  return new TaasError('TAAS_FILE_UNREADABLE', `import line ${lineNo}: ${why}`);
}

/** Parses and checks one line; secrets are never put in error messages. */
export function parseEntryLine(text: string, lineNo: number): Entry {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text);
  } catch {
    throw bad(lineNo, 'not JSON');
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw bad(lineNo, 'not a JSON object');
  const { id, secret, labels, clientPorts, policies, clientMode, createdAt, updatedAt, version } = v;
  if (typeof id !== 'string' || !isValidId(id)) throw bad(lineNo, 'id is missing or not a valid ID');
  if (typeof secret !== 'string' || !BASE32.test(secret)) throw bad(lineNo, `entry ${id}: secret is missing or not base32`);
  if (!Array.isArray(labels) || !labels.every((l) => typeof l === 'string' && isValidLabel(l))) {
    throw bad(lineNo, `entry ${id}: labels must be a list of lowercase DNS labels`);
  }
  const ports = clientPorts ?? {};
  if (typeof ports !== 'object' || Array.isArray(ports)) throw bad(lineNo, `entry ${id}: clientPorts must be an object`);
  for (const [label, port] of Object.entries(ports as Record<string, unknown>)) {
    if (!labels.includes(label)) throw bad(lineNo, `entry ${id}: client port for ${label}, which is not one of its labels`);
    if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) throw bad(lineNo, `entry ${id}: client port of ${label} is not a port`);
  }
  let checkedPolicies: Record<string, LabelPolicy> | undefined;
  if (policies !== undefined && policies !== null) {
    if (typeof policies !== 'object' || Array.isArray(policies)) throw bad(lineNo, `entry ${id}: policies must be an object`);
    checkedPolicies = {};
    for (const [label, p] of Object.entries(policies as Record<string, unknown>)) {
      if (!labels.includes(label)) throw bad(lineNo, `entry ${id}: policy for ${label}, which is not one of its labels`);
      try {
        checkedPolicies[label] = validatePolicy(p, `policy of ${label}`);
      } catch (e) {
        throw bad(lineNo, `entry ${id}: ${(e as Error).message}`);
      }
    }
  }
  const modes = clientMode ?? {};
  if (typeof modes !== 'object' || Array.isArray(modes)) throw bad(lineNo, `entry ${id}: clientMode must be an object`);
  for (const [label, mode] of Object.entries(modes as Record<string, unknown>)) {
    if (!labels.includes(label)) throw bad(lineNo, `entry ${id}: client mode for ${label}, which is not one of its labels`);
    if (mode !== 'redirect' && mode !== 'passthrough') throw bad(lineNo, `entry ${id}: client mode of ${label} is not redirect or passthrough`);
  }
  const now = new Date().toISOString();
  const time = (t: unknown, name: string): string => {
    if (t === undefined) return now;
    if (typeof t !== 'string' || Number.isNaN(Date.parse(t))) throw bad(lineNo, `entry ${id}: ${name} is not a date`);
    return t;
  };
  return {
    id,
    secret,
    labels: [...(labels as string[])],
    clientPorts: { ...(ports as Record<string, number>) },
    ...(checkedPolicies ? { policies: checkedPolicies } : {}),
    ...(Object.keys(modes).length ? { clientMode: { ...(modes as Record<string, ClientMode>) } } : {}),
    createdAt: time(createdAt, 'createdAt'),
    updatedAt: time(updatedAt, 'updatedAt'),
    version: typeof version === 'number' && Number.isInteger(version) && version > 0 ? version : 1,
  };
}

/** Parses every line and checks the file against itself (duplicate IDs, labels, ports). */
async function parseAll(lines: AsyncIterable<string> | Iterable<string>): Promise<Entry[]> {
  const out: Entry[] = [];
  const ids = new Map<string, number>();
  const labels = new Map<string, number>();
  const ports = new Map<number, number>();
  let lineNo = 0;
  for await (const chunk of lines) {
    // Items may be single lines or whole blocks of text: split, and skip blank lines.
    for (const raw of chunk.split('\n')) {
      lineNo++;
      const text = raw.trim();
      if (text === '') continue;
      const e = parseEntryLine(text, lineNo);
      if (ids.has(e.id)) throw bad(lineNo, `entry ${e.id} is also on line ${ids.get(e.id)}`);
      ids.set(e.id, lineNo);
      for (const l of e.labels) {
        if (labels.has(l)) throw bad(lineNo, `label ${l} is also on line ${labels.get(l)}`);
        labels.set(l, lineNo);
      }
      for (const p of Object.values(e.clientPorts)) {
        if (ports.has(p)) throw bad(lineNo, `client port ${p} is also on line ${ports.get(p)}`);
        ports.set(p, lineNo);
      }
      out.push(e);
    }
  }
  return out;
}

function sameContent(a: Entry, b: Entry): boolean {
  const ports = (e: Entry): string => JSON.stringify(Object.entries(e.clientPorts).sort(([x], [y]) => x.localeCompare(y)));
  const policies = (e: Entry): string => JSON.stringify(Object.entries(e.policies ?? {}).sort(([x], [y]) => x.localeCompare(y)));
  // A label named `redirect` and a label not named are the same mode.
  const passthrough = (e: Entry): string => JSON.stringify(e.labels.filter((l) => clientModeOf(e, l) === 'passthrough').sort());
  return a.secret === b.secret && JSON.stringify([...a.labels].sort()) === JSON.stringify([...b.labels].sort()) && ports(a) === ports(b) && policies(a) === policies(b) && passthrough(a) === passthrough(b);
}

/**
 * Imports entries from JSON lines (an iterable of lines or of text blocks). Throws before any
 * change when the input is malformed; a label held by an entry of the store that the file does
 * not mention stops the import at that entry (TAAS_LABEL_TAKEN, entries before it are in).
 */
export async function importEntries(store: Store, lines: AsyncIterable<string> | Iterable<string>): Promise<ImportResult> {
  const entries = await parseAll(lines);
  const result: ImportResult = { created: 0, updated: 0, skipped: 0 };
  // First let existing entries give up the labels and ports they lose, so a label that moves
  // from one entry to another within the file is free when its new owner is written.
  const released = new Set<string>();
  for (const e of entries) {
    const cur = await store.getEntry(e.id);
    if (!cur || sameContent(cur, e)) continue;
    const kept = cur.labels.filter((l) => e.labels.includes(l));
    const keptPorts = Object.fromEntries(Object.entries(cur.clientPorts).filter(([l, p]) => e.clientPorts[l] === p));
    if (kept.length !== cur.labels.length || Object.keys(keptPorts).length !== Object.keys(cur.clientPorts).length) {
      const keptPolicies = Object.fromEntries(Object.entries(cur.policies ?? {}).filter(([l]) => kept.includes(l)));
      const keptModes = Object.fromEntries(Object.entries(cur.clientMode ?? {}).filter(([l]) => kept.includes(l)));
      await store.updateEntry({ ...cur, labels: kept, clientPorts: keptPorts, policies: keptPolicies, clientMode: keptModes }, cur.version);
      released.add(e.id);
    }
  }
  for (const e of entries) {
    const cur = await store.getEntry(e.id);
    if (!cur) {
      await store.createEntry(e);
      result.created++;
    } else if (sameContent(cur, e)) {
      if (released.has(e.id)) result.updated++;
      else result.skipped++;
    } else {
      await store.updateEntry({ ...e, createdAt: cur.createdAt }, cur.version);
      result.updated++;
    }
  }
  return result;
}
