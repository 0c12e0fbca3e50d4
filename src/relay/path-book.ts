/**
 * Which path a mobile client asked for: the registrar records `path` against the client's
 * address when it answers the 307; the client port looks it up when that address connects,
 * so the pairing record can carry it. Bounded per label, entries expire (a 307 is followed
 * at once). An address behind a shared NAT may get a neighbour's path: it is a hint for the
 * operator's record, never used for routing.
 */
import { normaliseAddress } from './address.js';
import { PATH_TTL_MS, PATHS_PER_LABEL } from './constants.js';

export class PathBook {
  private readonly labels = new Map<string, Map<string, { path: string; at: number }>>();

  record(label: string, address: string, path: string): void {
    let m = this.labels.get(label);
    if (!m) this.labels.set(label, (m = new Map()));
    const a = normaliseAddress(address);
    m.delete(a); // re-insert so Map order stays oldest-first
    m.set(a, { path, at: Date.now() });
    if (m.size > PATHS_PER_LABEL) m.delete(m.keys().next().value!);
  }

  lookup(label: string, address: string | undefined): string | null {
    const m = this.labels.get(label);
    const e = m?.get(normaliseAddress(address));
    if (!e) return null;
    if (Date.now() - e.at > PATH_TTL_MS) {
      m!.delete(normaliseAddress(address));
      return null;
    }
    return e.path;
  }

  forget(label: string): void {
    this.labels.delete(label);
  }
}
