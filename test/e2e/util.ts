/** Shared pieces of the end-to-end suites: agent files, TOTP headers, the 307, raw clients. */
import fs from 'node:fs';
import net from 'node:net';
import { totpCode } from '../../src/auth/totp.js';
import { formatTotpAuthorization, parseAgentFile, type AgentFile } from '../../src/protocol/index.js';
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

export { clientPort } from '../helpers/registrar.js';

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
