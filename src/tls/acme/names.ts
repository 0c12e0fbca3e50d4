/**
 * The names on the registrar's ACME certificate, a function of the config and the entries so
 * that it follows entry changes: `namedRegistrar`, then `LABEL.<namedServers>` for each label
 * in redirect mode (their clients reach the registrar and get the 307 over this certificate),
 * or `*.<namedServers>` when the operator proves names by DNS (acme.wildcard), then
 * `acme.names`. Passthrough labels are left out: their clients reach the hidden server, whose
 * own certificate (taas-agent --acme) answers.
 */
import type { Config } from '../../config/schema.js';

/** Let's Encrypt's cap on names per certificate. */
export const MAX_ACME_NAMES = 100;

/** What names.ts needs of an entry: its labels and their client modes (label → mode; redirect when absent). */
export interface NamedEntry {
  labels: readonly string[];
  clientMode?: Readonly<Record<string, string>>;
}

function passthrough(e: NamedEntry, label: string): boolean {
  return e.clientMode !== undefined && Object.hasOwn(e.clientMode, label) && e.clientMode[label] === 'passthrough';
}

export function registrarAcmeNames(config: Readonly<Config>, entries: readonly NamedEntry[]): { names: string[]; dropped: number } {
  const acme = config.acme;
  const out = new Set<string>([config.namedRegistrar.toLowerCase()]);
  if (acme?.wildcard) out.add(`*.${config.namedServers.toLowerCase()}`);
  const labels = acme?.wildcard
    ? []
    : entries
        .flatMap((e) => e.labels.filter((l) => !passthrough(e, l)))
        .map((l) => `${l.toLowerCase()}.${config.namedServers.toLowerCase()}`)
        .sort();
  const extra = acme?.names ?? [];
  // The fixed names first, so the cap only ever drops labels.
  for (const n of [...extra, ...labels]) out.add(n);
  const all = [...out];
  return { names: all.slice(0, MAX_ACME_NAMES), dropped: Math.max(0, all.length - MAX_ACME_NAMES) };
}
