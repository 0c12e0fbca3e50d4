/** The agent file: written by `entries add`, read by `taas-agent`. */
import { TaasError } from '../errors.js';
import { isValidId, isValidLabel } from './names.js';

export interface AgentServer {
  host: string;
  port: number;
}

export interface AgentFile {
  id: string;
  /** Base32 TOTP secret. */
  secret: string;
  labels: string[];
  /** Name sent as Host and TLS server name. */
  registrar: string;
  /** Where to connect. */
  server: AgentServer;
  /** Further nodes of a multi-node relay, tried and spread over after `server`. */
  servers?: AgentServer[];
  /** PEM of the registrar certificate (the relay's CA). */
  ca: string;
  algorithm: 'SHA1' | 'SHA256' | 'SHA512';
  digits: number;
  period: number;
  /** Certificate and key issued for the labels from the relay's CA, for `taas-agent --tls`. */
  tls?: { cert: string; key: string };
}

function fail(file: string, why: string): TaasError {
  return new TaasError('TAAS_FILE_UNREADABLE', `agent file ${file}: ${why}`);
}

function isServer(v: unknown): v is AgentServer {
  const s = v as AgentServer;
  return !!s && typeof s.host === 'string' && s.host.length > 0 && Number.isInteger(s.port) && s.port > 0 && s.port < 65536;
}

/** Validates parsed JSON as an agent file; `file` names it in the error. */
export function parseAgentFile(text: string, file = '(agent file)'): AgentFile {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw fail(file, `not JSON (${(e as Error).message})`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw fail(file, 'not a JSON object');
  if (typeof v.id !== 'string' || !isValidId(v.id)) throw fail(file, 'id is missing or invalid');
  if (typeof v.secret !== 'string' || !/^[A-Z2-7]+=*$/i.test(v.secret) || v.secret.length < 16) throw fail(file, 'secret must be base32, at least 16 characters');
  if (!Array.isArray(v.labels) || v.labels.length === 0 || !v.labels.every((l) => typeof l === 'string' && isValidLabel(l))) throw fail(file, 'labels must be a non-empty list of DNS labels');
  if (typeof v.registrar !== 'string' || v.registrar.length === 0) throw fail(file, 'registrar is missing');
  if (!isServer(v.server)) throw fail(file, 'server must be { "host", "port" }');
  if (v.servers !== undefined && (!Array.isArray(v.servers) || !v.servers.every(isServer))) throw fail(file, 'servers must be a list of { "host", "port" }');
  if (typeof v.ca !== 'string' || !v.ca.includes('BEGIN CERTIFICATE')) throw fail(file, 'ca must be a PEM certificate');
  const algorithm = (v.algorithm ?? 'SHA1') as string;
  if (!['SHA1', 'SHA256', 'SHA512'].includes(algorithm)) throw fail(file, 'algorithm must be SHA1, SHA256 or SHA512');
  const digits = (v.digits ?? 6) as number;
  if (!Number.isInteger(digits) || digits < 6 || digits > 8) throw fail(file, 'digits must be 6, 7 or 8');
  const period = (v.period ?? 30) as number;
  if (!Number.isInteger(period) || period < 1 || period > 300) throw fail(file, 'period must be 1..300 seconds');
  const tls = v.tls as AgentFile['tls'];
  if (tls !== undefined && (typeof tls?.cert !== 'string' || typeof tls?.key !== 'string')) throw fail(file, 'tls must be { "cert", "key" } PEM');
  return {
    id: v.id,
    secret: v.secret.toUpperCase(),
    labels: v.labels as string[],
    registrar: v.registrar,
    server: v.server,
    ...(v.servers ? { servers: v.servers as AgentServer[] } : {}),
    ca: v.ca,
    algorithm: algorithm as AgentFile['algorithm'],
    digits,
    period,
    ...(tls ? { tls } : {}),
  };
}
