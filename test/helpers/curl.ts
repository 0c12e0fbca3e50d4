/**
 * curl as the mobile client: the real binary, following the 307 with the relay's CA.
 * `--resolve` pins LABEL.localhost to loopback so the test does not depend on the resolver.
 */
import { spawn } from 'node:child_process';

export interface CurlResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

export function curl(args: string[], opts: { input?: Buffer | string; timeoutMs?: number } = {}): Promise<CurlResult> {
  return new Promise((resolve, reject) => {
    const c = spawn('curl', ['-sS', '--max-time', String(Math.ceil((opts.timeoutMs ?? 30_000) / 1000)), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    c.stdout.on('data', (d: Buffer) => out.push(d));
    c.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    c.on('error', reject);
    c.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
    // curl may exit (an error, --max-time) before it reads its input: that EPIPE is not the test's.
    c.stdin.on('error', () => undefined);
    c.stdin.end(opts.input ?? '');
  });
}

/** Fetches `https://LABEL.localhost:PORT<path>` through the relay, following the 307. */
export function curlLabel(label: string, port: number, caFile: string, pathAndQuery = '/', extra: string[] = []): Promise<CurlResult> {
  const host = `${label}.localhost`;
  return curl(['-L', '--cacert', caFile, '--resolve', `${host}:${port}:127.0.0.1`, ...extra, `https://${host}:${port}${pathAndQuery}`]);
}

export interface StatusLine {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** One request to the registrar, without following redirects: status, headers (lowercase), body. */
export async function curlStatus(url: string, caFile: string, args: string[] = []): Promise<StatusLine> {
  const r = await curl(['-i', '--cacert', caFile, ...args, url]);
  if (r.code !== 0) throw new Error(`curl ${url} failed (${r.code}): ${r.stderr}`);
  const text = r.stdout.toString('latin1');
  const split = text.indexOf('\r\n\r\n');
  const head = text.slice(0, split).split('\r\n');
  const status = Number(/^HTTP\/[\d.]+ (\d{3})/.exec(head[0] ?? '')?.[1]);
  const headers: Record<string, string> = {};
  for (const h of head.slice(1)) {
    const c = h.indexOf(':');
    if (c > 0) headers[h.slice(0, c).trim().toLowerCase()] = h.slice(c + 1).trim();
  }
  return { status, headers, body: text.slice(split + 4) };
}
