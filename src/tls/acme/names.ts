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

/** What names.ts needs of an entry; `clientMode` comes with the shared port (issue 14, items 1/2). */
export interface NamedEntry {
  labels: readonly string[];
  clientMode?: string;
}

export function registrarAcmeNames(config: Readonly<Config>, entries: readonly NamedEntry[]): { names: string[]; dropped: number } {
  const acme = config.acme;
  const out = new Set<string>([config.namedRegistrar.toLowerCase()]);
  if (acme?.wildcard) out.add(`*.${config.namedServers.toLowerCase()}`);
  const labels = acme?.wildcard
    ? []
    : entries
        .filter((e) => (e.clientMode ?? 'redirect') === 'redirect')
        .flatMap((e) => e.labels)
        .map((l) => `${l.toLowerCase()}.${config.namedServers.toLowerCase()}`)
        .sort();
  const extra = acme?.names ?? [];
  // The fixed names first, so the cap only ever drops labels.
  for (const n of [...extra, ...labels]) out.add(n);
  const all = [...out];
  return { names: all.slice(0, MAX_ACME_NAMES), dropped: Math.max(0, all.length - MAX_ACME_NAMES) };
}
