/**
 * API keys: created with permissions, an expiry and allowed browser origins; shown once, stored
 * as a SHA-256 hash (the key carries 256 random bits, so a slow password hash buys nothing).
 * A key reads `taas_<id>_<secret>`: the id finds the record without scanning, the secret is
 * compared in constant time. Revoked keys stay listed (with revokedAt) so the log stays legible.
 */
import crypto from 'node:crypto';
import { TaasError } from '../errors.js';
import type { Store } from '../store/types.js';

export const PERMISSIONS = ['read', 'write', 'keys'] as const;
export type Permission = (typeof PERMISSIONS)[number];

export const KEYS_NS = 'apikeys';
/** Last-used times live apart from the records so that recording use can never undo a revocation. */
export const USED_NS = 'apikeys-used';
/** lastUsedAt is written at most this often per key: a busy script must not cause a write per request. */
const LAST_USED_EVERY_MS = 60_000;
const KEY_RE = /^taas_([A-Za-z0-9]{16})_([A-Za-z0-9_-]{43})$/;

export interface ApiKeyRecord {
  id: string;
  name: string;
  /** SHA-256 (hex) of the secret part. */
  hash: string;
  permissions: Permission[];
  /** ISO time after which the key is refused; null: no expiry. */
  expiresAt: string | null;
  /** Browser origins (scheme://host[:port]) allowed to use the key through CORS. */
  origins: string[];
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
  /** True for the management key the daemon writes to the data dir. */
  management?: boolean;
}

/** What the API shows of a key: everything but the hash. */
export type ApiKeyView = Omit<ApiKeyRecord, 'hash'> & { state: 'active' | 'expired' | 'revoked' };

export interface NewKeyInput {
  name: string;
  permissions: Permission[];
  expiresAt?: string | null;
  origins?: string[];
  management?: boolean;
}

const sha256 = (s: string): string => crypto.createHash('sha256').update(s).digest('hex');

function randomId(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = crypto.randomBytes(16);
  return [...bytes].map((b) => alphabet[b % alphabet.length]).join('');
}

/** Normalises an origin (scheme://host[:port], no path) or throws TAAS_BAD_REQUEST. */
export function normaliseOrigin(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new TaasError('TAAS_BAD_REQUEST', `origin ${JSON.stringify(raw)} is not a URL such as https://ops.example.com`);
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.pathname !== '/' || u.search || u.hash || u.username) {
    throw new TaasError('TAAS_BAD_REQUEST', `origin ${JSON.stringify(raw)} must be scheme://host[:port] with no path`);
  }
  return u.origin;
}

export function keyState(k: ApiKeyRecord, now = Date.now()): ApiKeyView['state'] {
  if (k.revokedAt) return 'revoked';
  if (k.expiresAt && Date.parse(k.expiresAt) <= now) return 'expired';
  return 'active';
}

export function viewOf(k: ApiKeyRecord): ApiKeyView {
  const { hash: _hash, ...rest } = k;
  return { ...rest, state: keyState(k) };
}

export class ApiKeys {
  private readonly lastUsedWritten = new Map<string, number>();

  constructor(private readonly store: Store) {}

  /** Creates a key; the returned `key` is the only time its secret exists outside the caller. */
  async create(input: NewKeyInput): Promise<{ key: string; record: ApiKeyRecord }> {
    const name = typeof input.name === 'string' ? input.name.trim() : '';
    if (name.length === 0 || name.length > 100) throw new TaasError('TAAS_BAD_REQUEST', 'name must be 1..100 characters');
    if (!Array.isArray(input.permissions) || input.permissions.length === 0 || !input.permissions.every((p) => (PERMISSIONS as readonly string[]).includes(p))) {
      throw new TaasError('TAAS_BAD_REQUEST', `permissions must be a non-empty list of ${PERMISSIONS.join(', ')}`);
    }
    let expiresAt: string | null = null;
    if (input.expiresAt !== undefined && input.expiresAt !== null) {
      const t = typeof input.expiresAt === 'string' ? Date.parse(input.expiresAt) : NaN;
      if (!Number.isFinite(t)) throw new TaasError('TAAS_BAD_REQUEST', 'expiresAt must be an ISO 8601 time or null');
      expiresAt = new Date(t).toISOString();
    }
    if (input.origins !== undefined && (!Array.isArray(input.origins) || input.origins.length > 20)) throw new TaasError('TAAS_BAD_REQUEST', 'origins must be a list of at most 20 origins');
    const origins = [...new Set((input.origins ?? []).map((o) => normaliseOrigin(String(o))))];
    const id = randomId();
    const secret = crypto.randomBytes(32).toString('base64url');
    const record: ApiKeyRecord = {
      id,
      name,
      hash: sha256(secret),
      permissions: [...new Set(input.permissions)],
      expiresAt,
      origins,
      createdAt: new Date().toISOString(),
      lastUsedAt: null,
      revokedAt: null,
      ...(input.management ? { management: true } : {}),
    };
    await this.store.putDoc(KEYS_NS, id, record);
    return { key: `taas_${id}_${secret}`, record };
  }

  get(id: string): Promise<ApiKeyRecord | null> {
    return this.store.getDoc<ApiKeyRecord>(KEYS_NS, id);
  }

  /** A record with its last-used time filled in (for display). */
  async getWithUse(id: string): Promise<ApiKeyRecord | null> {
    const k = await this.get(id);
    if (k) k.lastUsedAt = (await this.store.getDoc<string>(USED_NS, id)) ?? null;
    return k;
  }

  async list(): Promise<ApiKeyRecord[]> {
    const docs = await this.store.listDocs<ApiKeyRecord>(KEYS_NS);
    const used = new Map((await this.store.listDocs<string>(USED_NS)).map((d) => [d.key, d.value] as const));
    return docs
      .map((d) => ({ ...d.value, lastUsedAt: used.get(d.key) ?? null }))
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** Marks a key revoked; false when there is no such key. */
  async revoke(id: string): Promise<ApiKeyRecord | null> {
    const k = await this.get(id);
    if (!k) return null;
    if (!k.revokedAt) {
      k.revokedAt = new Date().toISOString();
      await this.store.putDoc(KEYS_NS, id, k);
    }
    return k;
  }

  /** The record of a presented key when it is known, unexpired and not revoked; TAAS_ADMIN_AUTH_INVALID otherwise. */
  async verify(presented: string): Promise<ApiKeyRecord> {
    const m = KEY_RE.exec(presented.trim());
    const k = m ? await this.get(m[1]!) : null;
    const ok = !!m && !!k && crypto.timingSafeEqual(Buffer.from(sha256(m[2]!), 'hex'), Buffer.from(k.hash, 'hex'));
    if (!ok || !k) throw new TaasError('TAAS_ADMIN_AUTH_INVALID', 'the API key is not known');
    return this.checkUsable(k);
  }

  /** Throws TAAS_ADMIN_AUTH_INVALID for a revoked or expired key. */
  checkUsable(k: ApiKeyRecord): ApiKeyRecord {
    const state = keyState(k);
    if (state !== 'active') throw new TaasError('TAAS_ADMIN_AUTH_INVALID', `the API key ${k.id} is ${state}`);
    return k;
  }

  /** Records use of a key, at most once a minute per key. */
  async touch(k: ApiKeyRecord): Promise<void> {
    const now = Date.now();
    if (now - (this.lastUsedWritten.get(k.id) ?? 0) < LAST_USED_EVERY_MS) return;
    this.lastUsedWritten.set(k.id, now);
    await this.store.putDoc(USED_NS, k.id, new Date(now).toISOString());
  }

  /** Union of the origins of all active keys: what a CORS preflight may be answered for. */
  async allowedOrigins(): Promise<Set<string>> {
    const out = new Set<string>();
    for (const k of await this.list()) if (keyState(k) === 'active') for (const o of k.origins) out.add(o);
    return out;
  }
}
