/**
 * The admin API from the CLI's side: when a daemon runs on this data dir, `taas-server entries …`
 * goes through its API (with the management key in `<dataDir>/admin.key`) so the daemon sees
 * every change at once and the API's rules apply. `adminClient` returns null when no daemon
 * answers, and the CLI then works on the store directly.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import type { Config } from '../config/schema.js';
import { ERROR_CODES, TaasError, type ErrorCode } from '../errors.js';
import type { AgentFile } from '../protocol/agent-file.js';
import { formatEndpoint } from '../protocol/endpoint.js';
import type { AttemptRecord, ClientMode, PairingRecord } from '../store/types.js';
import { readManagementKey } from './management-key.js';
import { adminUrlFile } from './url-file.js';
import type { PublicEntry } from './views.js';
import type { LabelPolicy } from '../protocol/policy.js';

/** A daemon that does not answer /healthz within this is treated as absent. */
const PROBE_TIMEOUT_MS = 1500;
/** Bound on any one API call from the CLI. */
const CALL_TIMEOUT_MS = 15_000;

export interface IssuedEntryView {
  entry: PublicEntry;
  secret: string;
  otpauthUri: string;
  qr: string;
  agentFile: AgentFile;
}

export interface AdminClient {
  readonly url: string;
  createEntry(input: { id?: string; labels: string[]; clientPorts?: Record<string, number>; clientMode?: Record<string, ClientMode> }): Promise<IssuedEntryView>;
  listEntries(): Promise<PublicEntry[]>;
  getEntry(id: string): Promise<PublicEntry>;
  removeEntry(id: string): Promise<boolean>;
  addLabel(id: string, label: string): Promise<PublicEntry>;
  removeLabel(id: string, label: string): Promise<PublicEntry>;
  rotateSecret(id: string): Promise<IssuedEntryView>;
  agentFile(id: string): Promise<AgentFile>;
  pairings(label: string, limit?: number): Promise<PairingRecord[]>;
  attempts(id: string, limit?: number): Promise<AttemptRecord[]>;
  /** Sets (null: removes) a label's traffic policy: a JSON Patch of its entry at the version read. */
  setPolicy(label: string, policy: LabelPolicy | null): Promise<PublicEntry>;
}

function baseUrl(dataDir: string, config: Readonly<Config>): string {
  try {
    const u = fs.readFileSync(adminUrlFile(dataDir), 'utf8').trim();
    if (u) return u;
  } catch {
    // no URL file: the configured address
  }
  const host = config.adminHost === '0.0.0.0' ? '127.0.0.1' : config.adminHost === '::' ? '::1' : config.adminHost;
  return `${config.adminCertFile ? 'https' : 'http'}://${formatEndpoint(host, config.adminPort)}`;
}

interface Answer {
  status: number;
  text: string;
}

/**
 * One HTTP(S) request with node:http(s): under admin TLS the certificate in adminCertFile is
 * trusted besides the usual roots (it is often self-signed), which fetch cannot be told.
 */
function request(url: string, init: { method: string; headers: Record<string, string>; body?: string; timeoutMs: number; ca?: string }): Promise<Answer> {
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(u, { method: init.method, headers: init.headers, timeout: init.timeoutMs, ...(init.ca ? { ca: [...tls.rootCertificates, init.ca] } : {}) }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${init.timeoutMs} ms`)));
    req.on('error', reject);
    req.end(init.body);
  });
}

function adminCa(config: Readonly<Config>): string | undefined {
  if (!config.adminCertFile) return undefined;
  try {
    return fs.readFileSync(config.adminCertFile, 'utf8');
  } catch {
    return undefined;
  }
}

async function probe(url: string, ca: string | undefined): Promise<boolean> {
  try {
    return (await request(url + '/healthz', { method: 'GET', headers: {}, timeoutMs: PROBE_TIMEOUT_MS, ca })).status === 200;
  } catch {
    return false;
  }
}

/** The client for the daemon running on `dataDir`, or null when none answers (or no management key exists). */
export async function adminClient(dataDir: string, config: Readonly<Config>): Promise<AdminClient | null> {
  const key = readManagementKey(dataDir);
  if (!key) return null;
  const url = baseUrl(dataDir, config);
  const ca = adminCa(config);
  if (!(await probe(url, ca))) return null;

  async function call<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    let res: Answer;
    try {
      res = await request(url + path, {
        method,
        headers: { 'x-api-key': key!, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
        timeoutMs: CALL_TIMEOUT_MS,
        ca,
      });
    } catch (e) {
      throw new TaasError('TAAS_STORE_UNAVAILABLE', `the daemon's admin API at ${url} did not answer: ${(e as Error).message}`);
    }
    const text = res.text;
    if (res.status < 200 || res.status > 299) {
      let code: ErrorCode = 'TAAS_INTERNAL';
      let msg = `admin API ${method} ${path}: HTTP ${res.status}`;
      try {
        const b = JSON.parse(text) as { errorCode?: string; errorMsg?: string };
        if (b.errorCode && b.errorCode in ERROR_CODES) code = b.errorCode as ErrorCode;
        if (b.errorMsg) msg = b.errorMsg;
      } catch {
        // not our error body: keep the generic message
      }
      throw new TaasError(code, msg, { status: res.status });
    }
    return (text ? JSON.parse(text) : null) as T;
  }
  const e = encodeURIComponent;

  return {
    url,
    createEntry: (input) => (input.id ? call('PUT', `/api/entries/${e(input.id)}`, { labels: input.labels, clientPorts: input.clientPorts, clientMode: input.clientMode }) : call('POST', '/api/entries', { labels: input.labels, clientPorts: input.clientPorts, clientMode: input.clientMode })),
    listEntries: () => call('GET', '/api/entries'),
    getEntry: (id) => call('GET', `/api/entries/${e(id)}`),
    removeEntry: async (id) => {
      try {
        await call('DELETE', `/api/entries/${e(id)}`);
        return true;
      } catch (err) {
        if (err instanceof TaasError && err.code === 'TAAS_ENTRY_NOT_FOUND') return false;
        throw err;
      }
    },
    addLabel: (id, label) => call('POST', `/api/entries/${e(id)}/labels`, { label }),
    removeLabel: (id, label) => call('DELETE', `/api/entries/${e(id)}/labels/${e(label)}`),
    rotateSecret: (id) => call('POST', `/api/entries/${e(id)}/rotate-secret`),
    agentFile: (id) => call('GET', `/api/entries/${e(id)}/agent-file`),
    pairings: (label, limit = 20) => call('GET', `/api/labels/${e(label)}/pairings?limit=${limit}`),
    attempts: (id, limit = 20) => call('GET', `/api/entries/${e(id)}/attempts?limit=${limit}`),
    setPolicy: async (label, policy) => {
      const entry = (await call<PublicEntry[]>('GET', '/api/entries')).find((x) => x.labels.includes(label));
      if (!entry) throw new TaasError('TAAS_NOT_FOUND', `no entry has label ${label}`);
      const has = entry.policies?.[label] !== undefined;
      const path = `/policies/${label}`;
      // Labels are DNS labels: no '~' or '/' to escape in a JSON Pointer.
      const ops = [
        ...(entry.policies ? [] : [{ op: 'add', path: '/policies', value: {} }]),
        policy === null ? (has ? [{ op: 'remove', path }] : []) : [{ op: 'add', path, value: policy }],
      ].flat();
      return call('PATCH', `/api/entries/${e(entry.id)}`, ops, { 'content-type': 'application/json-patch+json', 'if-match': `"${entry.version}"` });
    },
  };
}
