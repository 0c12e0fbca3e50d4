/**
 * The two requests most tests make of a daemon's registrar, with curl: a mobile client asking
 * for LABEL.localhost (and the client port its 307 names), and a registration. The names are
 * pinned with `--resolve`, so no test depends on the resolver.
 */
import { curlStatus, type StatusLine } from './curl.js';

/** What the requests need of a daemon: its registrar port and the CA its certificate chains to. */
export interface RegistrarAt {
  registrarPort: number;
  caFile: string;
}

export interface AskOptions {
  /** Path and query of the request; `/` by default. */
  path?: string;
  /** CA to trust instead of the daemon's own (a test that swapped the certificate). */
  caFile?: string;
  /** Address the name resolves to; 127.0.0.1 by default. */
  address?: string;
  /** More curl arguments (e.g. `--max-time 10`). */
  extra?: string[];
}

/** curl as a mobile client asking for `https://LABEL.localhost:PORT<path>`, without following. */
export function askAsClient(d: RegistrarAt, label: string, o: AskOptions = {}): Promise<StatusLine> {
  const host = `${label}.localhost`;
  return curlStatus(`https://${host}:${d.registrarPort}${o.path ?? '/'}`, o.caFile ?? d.caFile, [
    '--resolve', `${host}:${d.registrarPort}:${o.address ?? '127.0.0.1'}`, ...(o.extra ?? []),
  ]);
}

/** Asks for LABEL as a mobile client and returns the client port the 307 points to. */
export async function clientPort(d: RegistrarAt, label: string, o: AskOptions = {}): Promise<number> {
  const r = await askAsClient(d, label, o);
  if (r.status !== 307) throw new Error(`expected 307 for ${label}, got ${r.status}: ${r.body}`);
  return Number(new URL(r.headers.location!).port);
}

/** `PUT /register/LABEL` at the registrar's own name with an explicit Authorization header. */
export function register(d: RegistrarAt, label: string, authorization: string, o: Omit<AskOptions, 'path'> = {}): Promise<StatusLine> {
  const host = 'registrar.localhost';
  return curlStatus(`https://${host}:${d.registrarPort}/register/${label}`, o.caFile ?? d.caFile, [
    '--resolve', `${host}:${d.registrarPort}:${o.address ?? '127.0.0.1'}`, ...(o.extra ?? []), '-X', 'PUT', '-H', `Authorization: ${authorization}`,
  ]);
}
