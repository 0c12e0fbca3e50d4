/**
 * The pending ACME challenges of this process: TLS-ALPN-01 certificates by name and HTTP-01
 * key authorizations by token. One owner (this class) for that state. With a shared document
 * store (the relay's Store, several nodes) every challenge is also written there, so whichever
 * node the CA's validation connection reaches can answer it; the agent keeps them in memory.
 */
import tls from 'node:tls';
import { TaasError } from '../../errors.js';

/** The part of the relay's Store that ACME uses (structural: the tls room does not import store). */
export interface DocStore {
  getDoc<T = unknown>(ns: string, key: string): Promise<T | null>;
  putDoc(ns: string, key: string, value: unknown, ttlSeconds?: number): Promise<void>;
  deleteDoc(ns: string, key: string): Promise<boolean>;
  /** Writes the document only when none exists; true when written (a lock). */
  claimDoc(ns: string, key: string, value: unknown, ttlSeconds: number): Promise<boolean>;
}

export const CHALLENGE_NS = 'acme-challenge';
/**
 * A challenge outlives its order only by accident (a crash between create and remove); CAs
 * give up on an authorization within minutes, so ten is plenty and bounds what a crash leaves.
 */
const CHALLENGE_TTL_S = 600;
/** An order has at most 100 names (Let's Encrypt's cap); a few orders' worth bounds the maps. */
const MAX_PENDING = 1000;

interface AlpnCert {
  key: string;
  cert: string;
}

export class ChallengeBook {
  private readonly alpn = new Map<string, { pem: AlpnCert; ctx: tls.SecureContext }>();
  private readonly http = new Map<string, string>();

  constructor(private readonly shared: DocStore | null = null) {}

  /** Names with a TLS-ALPN-01 challenge pending here (for logs and tests). */
  get pendingNames(): string[] {
    return [...this.alpn.keys()];
  }

  async addTlsAlpn(name: string, pem: AlpnCert): Promise<void> {
    const key = name.toLowerCase();
    if (this.alpn.size >= MAX_PENDING && !this.alpn.has(key)) throw new TaasError('TAAS_ACME_ORDER_FAILED', `more than ${MAX_PENDING} ACME challenges pending`);
    this.alpn.set(key, { pem, ctx: tls.createSecureContext({ key: pem.key, cert: pem.cert, minVersion: 'TLSv1.2' }) });
    await this.shared?.putDoc(CHALLENGE_NS, `tls:${key}`, pem, CHALLENGE_TTL_S);
  }

  async removeTlsAlpn(name: string): Promise<void> {
    const key = name.toLowerCase();
    this.alpn.delete(key);
    await this.shared?.deleteDoc(CHALLENGE_NS, `tls:${key}`);
  }

  /** The challenge certificate's context for a handshake naming `name`, or null when none is pending. */
  async tlsAlpnContext(name: string): Promise<tls.SecureContext | null> {
    const key = name.toLowerCase();
    const local = this.alpn.get(key);
    if (local) return local.ctx;
    if (!this.shared) return null;
    // Another node's order: its challenge is in the shared store.
    const pem = await this.shared.getDoc<AlpnCert>(CHALLENGE_NS, `tls:${key}`);
    return pem ? tls.createSecureContext({ key: pem.key, cert: pem.cert, minVersion: 'TLSv1.2' }) : null;
  }

  async addHttp(token: string, keyAuthorization: string): Promise<void> {
    if (this.http.size >= MAX_PENDING && !this.http.has(token)) throw new TaasError('TAAS_ACME_ORDER_FAILED', `more than ${MAX_PENDING} ACME challenges pending`);
    this.http.set(token, keyAuthorization);
    await this.shared?.putDoc(CHALLENGE_NS, `http:${token}`, keyAuthorization, CHALLENGE_TTL_S);
  }

  async removeHttp(token: string): Promise<void> {
    this.http.delete(token);
    await this.shared?.deleteDoc(CHALLENGE_NS, `http:${token}`);
  }

  /** The key authorization to answer an HTTP-01 request for `token` with, or null. */
  async httpAnswer(token: string): Promise<string | null> {
    const local = this.http.get(token);
    if (local !== undefined) return local;
    return this.shared ? this.shared.getDoc<string>(CHALLENGE_NS, `http:${token}`) : null;
  }
}
