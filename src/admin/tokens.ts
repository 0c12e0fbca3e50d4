/**
 * Session tokens for the web page (reference 003): a short-lived access token signed with an
 * asymmetric key (ES256), and a long-lived refresh token that can be revoked.
 *
 * Each node keeps its own signing key in the data dir (0600) and publishes the public half in
 * the store, so every node of a multi-node relay verifies every node's tokens by `kid`; the
 * public keys are also served at /api/auth/jwks.json. Refresh tokens read `<id>.<secret>`; the
 * store keeps only a hash of the secret.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SignJWT, calculateJwkThumbprint, exportJWK, importJWK, jwtVerify, generateKeyPair, type JWK, type CryptoKey } from 'jose';
import { TaasError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import type { Store } from '../store/types.js';

const ALG = 'ES256';
const ISSUER = 'taas-server-admin';
/** Five minutes: a leaked access token is worth little, and the page refreshes silently. */
export const ACCESS_TTL_S = 300;
/** Thirty days: an operator signs in about once a month per browser. */
export const REFRESH_TTL_S = 30 * 24 * 3600;
export const JWKS_NS = 'jwks';
export const REFRESH_NS = 'refresh';

export interface AccessClaims {
  /** API key id the session was opened with. */
  sub: string;
  /** Refresh token id (the session). */
  sid: string;
  /** CSRF token the page must echo in X-CSRF-Token. */
  csrf: string;
}

export interface RefreshRecord {
  id: string;
  keyId: string;
  hash: string;
  csrf: string;
  createdAt: string;
  expiresAt: string;
  userAgent: string;
}

const sha256 = (s: string): string => crypto.createHash('sha256').update(s).digest('hex');

export class TokenService {
  private readonly verifyKeys = new Map<string, CryptoKey | Uint8Array>();

  private constructor(
    private readonly store: Store,
    private readonly privateKey: CryptoKey,
    readonly publicJwk: JWK & { kid: string },
  ) {}

  /** Loads (or creates, 0600) the node's signing key and publishes its public key. */
  static async open(store: Store, dataDir: string): Promise<TokenService> {
    const file = path.resolve(dataDir, 'admin-signing.jwk');
    let priv: JWK;
    if (fs.existsSync(file)) {
      try {
        priv = JSON.parse(fs.readFileSync(file, 'utf8'));
      } catch (e) {
        throw new TaasError('TAAS_FILE_UNREADABLE', `admin signing key ${file}: ${(e as Error).message}`);
      }
    } else {
      const pair = await generateKeyPair(ALG, { extractable: true });
      priv = await exportJWK(pair.privateKey);
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      writeFileAtomic(file, JSON.stringify(priv) + '\n', 0o600);
    }
    const { d: _d, ...pub } = priv;
    const kid = await calculateJwkThumbprint(pub);
    const publicJwk = { ...pub, kid, alg: ALG, use: 'sig' };
    const privateKey = (await importJWK({ ...priv, alg: ALG }, ALG)) as CryptoKey;
    const svc = new TokenService(store, privateKey, publicJwk);
    // Published now if the store answers, else before the first token is signed.
    await svc.publish().catch(() => undefined);
    return svc;
  }

  private published = false;

  /** Puts this node's public key in the store, where every node looks verification keys up. */
  async publish(): Promise<void> {
    if (this.published) return;
    await this.store.putDoc(JWKS_NS, this.publicJwk.kid, this.publicJwk);
    this.published = true;
  }

  /** Public keys of every node (for other verifiers). */
  async jwks(): Promise<{ keys: JWK[] }> {
    return { keys: (await this.store.listDocs<JWK>(JWKS_NS)).map((d) => d.value) };
  }

  async signAccess(claims: AccessClaims): Promise<{ token: string; expiresAt: number }> {
    await this.publish();
    const expiresAt = Math.floor(Date.now() / 1000) + ACCESS_TTL_S;
    const token = await new SignJWT({ sid: claims.sid, csrf: claims.csrf })
      .setProtectedHeader({ alg: ALG, kid: this.publicJwk.kid })
      .setSubject(claims.sub)
      .setIssuer(ISSUER)
      .setIssuedAt()
      .setExpirationTime(expiresAt)
      .sign(this.privateKey);
    return { token, expiresAt: expiresAt * 1000 };
  }

  private async keyFor(kid: string): Promise<CryptoKey | Uint8Array> {
    const cached = this.verifyKeys.get(kid);
    if (cached) return cached;
    const jwk = await this.store.getDoc<JWK>(JWKS_NS, kid);
    if (!jwk) throw new TaasError('TAAS_ADMIN_AUTH_INVALID', 'the access token was signed by an unknown key');
    const key = await importJWK({ ...jwk, alg: ALG }, ALG);
    this.verifyKeys.set(kid, key);
    return key;
  }

  /** Verifies signature, issuer and expiry; TAAS_ADMIN_AUTH_INVALID otherwise. */
  async verifyAccess(token: string): Promise<AccessClaims> {
    try {
      const { payload } = await jwtVerify(token, (header) => this.keyFor(String(header.kid ?? '')), { issuer: ISSUER, algorithms: [ALG] });
      if (typeof payload.sub !== 'string' || typeof payload.sid !== 'string' || typeof payload.csrf !== 'string') throw new Error('claims missing');
      return { sub: payload.sub, sid: payload.sid, csrf: payload.csrf };
    } catch (e) {
      if (e instanceof TaasError) throw e;
      throw new TaasError('TAAS_ADMIN_AUTH_INVALID', 'the access token is invalid or expired');
    }
  }

  /** Opens a session for a key: a refresh token (returned once) and its record. */
  async createRefresh(keyId: string, userAgent: string): Promise<{ token: string; record: RefreshRecord }> {
    const id = crypto.randomBytes(12).toString('base64url');
    const secret = crypto.randomBytes(32).toString('base64url');
    const now = Date.now();
    const record: RefreshRecord = {
      id,
      keyId,
      hash: sha256(secret),
      csrf: crypto.randomBytes(24).toString('base64url'),
      createdAt: new Date(now).toISOString(),
      expiresAt: new Date(now + REFRESH_TTL_S * 1000).toISOString(),
      userAgent: userAgent.slice(0, 200),
    };
    await this.store.putDoc(REFRESH_NS, id, record, REFRESH_TTL_S);
    return { token: `${id}.${secret}`, record };
  }

  /** The session a refresh token names, when it is known, unexpired and not revoked. */
  async checkRefresh(token: string): Promise<RefreshRecord> {
    const [id, secret] = token.split('.');
    const rec = id && secret ? await this.store.getDoc<RefreshRecord>(REFRESH_NS, id) : null;
    const ok = !!rec && crypto.timingSafeEqual(Buffer.from(sha256(secret!), 'hex'), Buffer.from(rec.hash, 'hex')) && Date.parse(rec.expiresAt) > Date.now();
    if (!ok || !rec) throw new TaasError('TAAS_ADMIN_AUTH_INVALID', 'the refresh token is unknown, expired or revoked');
    return rec;
  }

  /** Whether a session (refresh token id) is still open; access tokens of a closed session are refused. */
  async sessionOpen(sid: string): Promise<boolean> {
    return (await this.store.getDoc(REFRESH_NS, sid)) !== null;
  }

  getSession(id: string): Promise<RefreshRecord | null> {
    return this.store.getDoc<RefreshRecord>(REFRESH_NS, id);
  }

  async listSessions(): Promise<RefreshRecord[]> {
    return (await this.store.listDocs<RefreshRecord>(REFRESH_NS)).map((d) => d.value);
  }

  revokeSession(id: string): Promise<boolean> {
    return this.store.deleteDoc(REFRESH_NS, id);
  }

  /** Revokes every session of a key (when the key is revoked). */
  async revokeSessionsOfKey(keyId: string): Promise<number> {
    let n = 0;
    for (const s of await this.listSessions()) if (s.keyId === keyId && (await this.revokeSession(s.id))) n++;
    return n;
  }
}
