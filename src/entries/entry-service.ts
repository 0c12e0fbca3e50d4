/**
 * Entries as the operator manages them (CLI and admin API): IDs, fresh TOTP secrets, labels,
 * fixed client ports, and the agent file each hidden server gets.
 */
import crypto from 'node:crypto';
import type { ConfigView } from '../config/view.js';
import { TaasError } from '../errors.js';
import type { AgentFile } from '../protocol/agent-file.js';
import { isReservedLabel, isValidId, isValidLabel, normaliseLabel } from '../protocol/names.js';
import { isEmptyPolicy, validatePolicy, type LabelPolicy } from '../protocol/policy.js';
import { newTotpSecret, otpauthUri } from '../auth/totp.js';
import type { RelayTls } from '../tls/relay-tls.js';
import { CLIENT_MODES, type ClientMode, type Entry, type Store } from '../store/types.js';

export interface IssuedEntry {
  entry: Entry;
  secret: string;
  otpauthUri: string;
  agentFile: AgentFile;
}

export interface EntryInput {
  id?: string;
  labels: string[];
  clientPorts?: Record<string, number>;
  /** label → traffic policy; every key one of the labels. */
  policies?: Record<string, LabelPolicy>;
  /** label → client mode; labels not named are `redirect`. */
  clientMode?: Record<string, ClientMode>;
}

export interface EntryServiceOptions {
  /** Read at each use: after a reload, entries are checked against the new portRange. */
  config: ConfigView;
  /** The registrar's certificate of the moment (a reload may replace it), or null for plain HTTP. */
  tls: () => RelayTls | null;
  /** Where hidden servers reach the registrar (the real port when taasPort is 0). */
  registrarEndpoint?: () => { host: string; port: number };
  /**
   * The other live nodes of a multi-node relay: their registrars go into the agent file's
   * `servers` (so the agent spreads and fails over), their client hosts into the --tls
   * certificate (clients are sent there too). Empty on one node.
   */
  peers?: () => Promise<{ registrar: { host: string; port: number }; clientHost: string }[]>;
}

export class EntryService {
  constructor(
    private readonly store: Store,
    private readonly opts: EntryServiceOptions,
  ) {}

  private labelsOf(raw: string[]): string[] {
    if (!Array.isArray(raw) || raw.length === 0) throw new TaasError('TAAS_ENTRY_INVALID', 'an entry needs at least one label');
    const out: string[] = [];
    for (const r of raw) {
      const l = typeof r === 'string' ? normaliseLabel(r.trim()) : '';
      if (!isValidLabel(l)) throw new TaasError('TAAS_LABEL_INVALID', `label ${JSON.stringify(r)} is not a DNS label (letters, digits and inner hyphens, 1-63 characters)`);
      if (isReservedLabel(l, this.opts.config.current.namedRegistrar)) throw new TaasError('TAAS_LABEL_INVALID', `label ${l} is reserved`);
      if (!out.includes(l)) out.push(l);
    }
    return out;
  }

  private clientPortsOf(raw: Record<string, number> | undefined, labels: string[]): Record<string, number> {
    const out: Record<string, number> = {};
    const c = this.opts.config.current;
    const [lo, hi] = c.portRange;
    for (const [label, port] of Object.entries(raw ?? {})) {
      if (!labels.includes(label)) throw new TaasError('TAAS_ENTRY_INVALID', `client port given for label ${label}, which the entry does not have`);
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new TaasError('TAAS_ENTRY_INVALID', `client port ${port} for ${label} is not a port 1..65535`);
      if (port >= lo && port <= hi) throw new TaasError('TAAS_ENTRY_INVALID', `client port ${port} for ${label} lies inside portRange ${lo}-${hi}, which the relay allocates from`);
      if (port === c.taasPort || port === c.adminPort) throw new TaasError('TAAS_ENTRY_INVALID', `client port ${port} is the registrar's or the admin's port`);
      out[label] = port;
    }
    return out;
  }

  /** Each policy validated (canonical form), for a label of the entry; empty ones dropped. */
  private policiesOf(raw: Record<string, unknown> | undefined, labels: string[]): Record<string, LabelPolicy> | undefined {
    if (raw === undefined || raw === null) return undefined;
    if (typeof raw !== 'object' || Array.isArray(raw)) throw new TaasError('TAAS_POLICY_INVALID', 'policies must be an object of label → policy');
    const out: Record<string, LabelPolicy> = {};
    for (const [label, p] of Object.entries(raw)) {
      if (!labels.includes(label)) throw new TaasError('TAAS_POLICY_INVALID', `policy given for label ${label}, which the entry does not have`);
      const v = validatePolicy(p, `policy of ${label}`);
      if (!isEmptyPolicy(v)) out[label] = v;
    }
    return Object.keys(out).length ? out : undefined;
  }

  /** The entry with `label`, or TAAS_NOT_FOUND. */
  async ofLabel(label: string): Promise<Entry> {
    const l = normaliseLabel(label);
    const e = await this.store.entryForLabel(l);
    if (!e) throw new TaasError('TAAS_NOT_FOUND', `no entry has label ${l}`);
    return e;
  }

  /** Sets (or with null removes) the traffic policy of `label`, wherever its entry is. */
  async setPolicy(label: string, policy: LabelPolicy | null): Promise<Entry> {
    const cur = await this.ofLabel(label);
    const l = normaliseLabel(label);
    const policies = { ...(cur.policies ?? {}) };
    if (policy === null) delete policies[l];
    else policies[l] = policy;
    return this.replace(cur.id, { labels: cur.labels, clientPorts: cur.clientPorts, policies }, cur.version);
  }

  private clientModeOf(raw: Record<string, unknown> | undefined, labels: string[]): Record<string, ClientMode> | undefined {
    if (raw === undefined) return undefined;
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new TaasError('TAAS_ENTRY_INVALID', 'clientMode must be an object of label → redirect | passthrough');
    const out: Record<string, ClientMode> = {};
    for (const [label, mode] of Object.entries(raw)) {
      if (!labels.includes(label)) throw new TaasError('TAAS_ENTRY_INVALID', `client mode given for label ${label}, which the entry does not have`);
      if (!CLIENT_MODES.includes(mode as ClientMode)) throw new TaasError('TAAS_ENTRY_INVALID', `client mode ${JSON.stringify(mode)} for ${label} is not one of ${CLIENT_MODES.join(', ')}`);
      out[label] = mode as ClientMode;
    }
    return Object.keys(out).length ? out : undefined;
  }

  /** An entry with its client modes set (or none: every label redirect). */
  private withModes<T extends object>(e: T, modes: Record<string, ClientMode> | undefined): T & { clientMode?: Record<string, ClientMode> } {
    const { clientMode: _old, ...rest } = e as T & { clientMode?: unknown };
    return (modes ? { ...rest, clientMode: modes } : rest) as T & { clientMode?: Record<string, ClientMode> };
  }

  async create(input: EntryInput): Promise<IssuedEntry> {
    const id = input.id ?? crypto.randomUUID();
    if (!isValidId(id)) throw new TaasError('TAAS_ENTRY_INVALID', `ID ${JSON.stringify(id)} is not valid (letters, digits, '.', '_' and '-', up to 128)`);
    const labels = this.labelsOf(input.labels);
    const now = new Date().toISOString();
    const policies = this.policiesOf(input.policies, labels);
    const base: Entry = { id, secret: newTotpSecret(), labels, clientPorts: this.clientPortsOf(input.clientPorts, labels), ...(policies ? { policies } : {}), createdAt: now, updatedAt: now, version: 1 };
    const entry = this.withModes(base, this.clientModeOf(input.clientMode, labels));
    const stored = await this.store.createEntry(entry);
    return this.issued(stored);
  }

  async get(id: string): Promise<Entry> {
    const e = await this.store.getEntry(id);
    if (!e) throw new TaasError('TAAS_ENTRY_NOT_FOUND', `no entry with ID ${id}`);
    return e;
  }

  list(): Promise<Entry[]> {
    return this.store.listEntries();
  }

  async replace(id: string, input: Omit<EntryInput, 'id'>, expectedVersion?: number): Promise<Entry> {
    const cur = await this.get(id);
    const labels = this.labelsOf(input.labels);
    // A replace without `policies` keeps those of labels it keeps (a PUT of labels alone does
    // not silently lift a label's protection); a label dropped takes its policy with it. The
    // same for clientMode: a replace without it keeps the modes of the labels it keeps.
    const given = input.policies !== undefined ? input.policies : Object.fromEntries(Object.entries(cur.policies ?? {}).filter(([l]) => labels.includes(l)));
    const policies = this.policiesOf(given, labels);
    const modes = input.clientMode ?? Object.fromEntries(Object.entries(cur.clientMode ?? {}).filter(([l]) => labels.includes(l)));
    const { policies: _old, ...rest } = cur;
    const next = this.withModes({ ...rest, labels, clientPorts: this.clientPortsOf(input.clientPorts, labels), ...(policies ? { policies } : {}) }, this.clientModeOf(modes, labels));
    return this.store.updateEntry(next, expectedVersion);
  }

  async addLabel(id: string, label: string): Promise<Entry> {
    const cur = await this.get(id);
    return this.replace(id, { labels: [...cur.labels, label], clientPorts: cur.clientPorts }, cur.version);
  }

  async removeLabel(id: string, label: string): Promise<Entry> {
    const cur = await this.get(id);
    const l = normaliseLabel(label);
    if (!cur.labels.includes(l)) throw new TaasError('TAAS_NOT_FOUND', `entry ${id} has no label ${l}`);
    const clientPorts = { ...cur.clientPorts };
    delete clientPorts[l];
    const policies = { ...(cur.policies ?? {}) };
    delete policies[l];
    return this.replace(id, { labels: cur.labels.filter((x) => x !== l), clientPorts, policies }, cur.version);
  }

  remove(id: string): Promise<boolean> {
    return this.store.deleteEntry(id);
  }

  async rotateSecret(id: string): Promise<IssuedEntry> {
    const cur = await this.get(id);
    const next = await this.store.updateEntry({ ...cur, secret: newTotpSecret() }, cur.version);
    return this.issued(next);
  }

  async agentFile(id: string): Promise<AgentFile> {
    return this.agentFileOf(await this.get(id));
  }

  private async issued(entry: Entry): Promise<IssuedEntry> {
    return { entry, secret: entry.secret, otpauthUri: otpauthUri(entry.secret, entry.id), agentFile: await this.agentFileOf(entry) };
  }

  private async agentFileOf(entry: Entry): Promise<AgentFile> {
    const c = this.opts.config.current;
    const server = this.opts.registrarEndpoint?.() ?? { host: c.taasHost, port: c.taasPort };
    const tls = this.opts.tls();
    const peers = (await this.opts.peers?.().catch(() => [])) ?? [];
    const servers = peers.map((p) => p.registrar).filter((s) => s.host !== server.host || s.port !== server.port);
    return {
      id: entry.id,
      secret: entry.secret,
      labels: entry.labels,
      registrar: c.namedRegistrar,
      server,
      ...(servers.length ? { servers } : {}),
      ca: tls?.caPem ?? '',
      algorithm: 'SHA1',
      digits: 6,
      period: 30,
      ...(tls?.canIssue ? { tls: tls.issueForLabels(entry.labels, peers.map((p) => p.clientHost)) } : {}),
    };
  }
}
