/** Shared pieces of the end-to-end suites: agent files, TOTP headers, the 307, raw clients. */
import fs from 'node:fs';
import net from 'node:net';
import { totpCode } from '../../src/auth/totp.js';
import { formatTotpAuthorization, parseAgentFile, parseEndpoint, type AgentFile } from '../../src/protocol/index.js';
import { curlStatus } from '../helpers/curl.js';
import type { Daemon } from '../helpers/daemon.js';

export function readAgentFile(file: string): AgentFile {
  return parseAgentFile(fs.readFileSync(file, 'utf8'), file);
}

/** A TOTP Authorization header for the entry, for a step `stepOffset` away from now. */
export function totpHeader(a: AgentFile, stepOffset = 0): string {
  const at = Date.now() + stepOffset * a.period * 1000;
  return formatTotpAuthorization({ id: a.id, token: totpCode(a.secret, a, at) });
}

/** The registrar URL under its own name, pinned to loopback with --resolve. */
export function registrarArgs(d: Daemon): { url: (path: string) => string; args: string[] } {
  const host = 'registrar.localhost';
  return { url: (p) => `https://${host}:${d.registrarPort}${p}`, args: ['--resolve', `${host}:${d.registrarPort}:127.0.0.1`] };
}

/** Asks for LABEL.localhost as a mobile client and returns the client port the 307 points to. */
export async function clientPort(d: Daemon, label: string, path = '/'): Promise<number> {
  const host = `${label}.localhost`;
  const r = await curlStatus(`https://${host}:${d.registrarPort}${path}`, d.caFile, ['--resolve', `${host}:${d.registrarPort}:127.0.0.1`]);
  if (r.status !== 307) throw new Error(`expected 307 for ${label}, got ${r.status}: ${r.body}`);
  const u = new URL(r.headers.location!);
  const ep = parseEndpoint(`${u.hostname}:${u.port}`);
  return ep!.port;
}

/** Resolves when the peer refused, reset or ended the connection, saying which. */
export function refusedOrClosed(s: net.Socket, ms = 10_000): Promise<'refused' | 'closed' | 'reset'> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`connection still open after ${ms} ms`)), ms);
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(e.code === 'ECONNREFUSED' ? 'refused' : 'reset');
    });
    // Sockets from helpers/net connect() are half-open: a FIN alone gives 'end', not 'close'.
    const closed = () => {
      clearTimeout(timer);
      resolve('closed');
    };
    s.once('end', closed);
    s.once('close', closed);
    s.resume();
  });
}
