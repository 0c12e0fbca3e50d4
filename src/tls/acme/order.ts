/**
 * One certificate order with `acme-client`: the account (created on first use, found again
 * by its key afterwards), a fresh ECDSA P-256 key and CSR for the names, the chosen challenge
 * published through the ChallengeBook (TLS-ALPN-01, HTTP-01) or the DNS-01 hook, and the
 * issued chain. The CA does the validating; acme-client's own pre-check (which would dial the
 * names on port 443/80 from here) is skipped.
 */
import crypto from 'node:crypto';
import https from 'node:https';
import tls from 'node:tls';
import acme from 'acme-client';
import type { AcmeChallenge } from '../../config/schema.js';
import { TaasError, oneLine } from '../../errors.js';
import type { ChallengeBook } from './challenges.js';
import { runDns01Hook } from './dns01.js';

export interface OrderRequest {
  directoryUrl: string;
  email?: string;
  /** PEM trusted for the directory's HTTPS besides the public roots (a private CA such as pebble's). */
  directoryCa?: string;
  accountKey: string;
  names: string[];
  challenge: AcmeChallenge;
  book: ChallengeBook;
  dns01Hook?: string;
  /**
   * The key type of the certificate the listener serves by default. The challenge certificate
   * must be of the same type: Node installs an SNI context's certificate beside the one the
   * handshake started with (OpenSSL keeps one per key type), and a validator preferring the
   * other type (Go's crypto/tls lists RSA-PSS first) would be given the usual certificate.
   */
  challengeKeyType?: KeyType;
  /** Told of each step, for the log. */
  note?: (msg: string, fields?: Record<string, unknown>) => void;
}

export interface IssuedCertificate {
  key: string;
  /** The chain: leaf first, then the intermediates. */
  cert: string;
  names: string[];
  notAfter: string;
}

/**
 * Polling for a challenge's and an order's status: a second at first (a CA validates within
 * seconds), backing off to ten, a dozen times: about two minutes before the order is given up.
 */
const BACKOFF = { backoffAttempts: 12, backoffMin: 1000, backoffMax: 10_000 };

export type KeyType = 'rsa' | 'ec';

/** The type of a PEM private key, as far as the challenge certificate must follow it. */
export function keyTypeOf(keyPem: string): KeyType {
  return crypto.createPrivateKey(keyPem).asymmetricKeyType === 'rsa' ? 'rsa' : 'ec';
}

/** A new account key (ECDSA P-256: small JWS signatures, accepted by every ACME CA). */
export async function newAccountKey(): Promise<string> {
  return (await acme.crypto.createPrivateEcdsaKey('P-256')).toString('utf8');
}

/** The moment a PEM certificate (its first) stops being valid. */
export function certNotAfter(certPem: string): Date {
  return acme.crypto.readCertificateInfo(certPem).notAfter;
}

/** acme-client's HTTP client is one per process: the directory's trust is set on it. */
function trustDirectory(ca: string | undefined): void {
  acme.axios.defaults.httpsAgent = new https.Agent({ ca: ca ? [...tls.rootCertificates, ca] : undefined, keepAlive: false });
}

export async function orderCertificate(req: OrderRequest): Promise<IssuedCertificate> {
  trustDirectory(req.directoryCa);
  const client = new acme.Client({ directoryUrl: req.directoryUrl, accountKey: req.accountKey, ...BACKOFF });
  const key = await acme.crypto.createPrivateEcdsaKey('P-256');
  const first = req.names.find((n) => !n.startsWith('*.') && n.length <= 64);
  const [, csr] = await acme.crypto.createCsr({ altNames: req.names, ...(first ? { commonName: first } : {}) }, key);
  const alpnKey = req.challengeKeyType === 'rsa' ? await acme.crypto.createPrivateRsaKey(2048) : await acme.crypto.createPrivateEcdsaKey('P-256');
  const note = req.note ?? (() => undefined);
  try {
    const cert = await client.auto({
      csr,
      email: req.email,
      termsOfServiceAgreed: true,
      skipChallengeVerification: true,
      challengePriority: [req.challenge],
      challengeCreateFn: async (authz, challenge, keyAuthorization) => {
        const name = authz.identifier.value;
        note('ACME challenge published', { name, challenge: challenge.type });
        // acme-client's types predate RFC 8737: the type is compared as a string.
        const type: string = challenge.type;
        if (type === 'tls-alpn-01') {
          const [, alpnCert] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization, alpnKey);
          await req.book.addTlsAlpn(name, { key: alpnKey.toString('utf8'), cert: alpnCert.toString('utf8') });
        } else if (challenge.type === 'http-01') {
          await req.book.addHttp(challenge.token, keyAuthorization);
        } else if (challenge.type === 'dns-01') {
          await runDns01Hook(req.dns01Hook!, 'add', authz.wildcard ? `*.${name}` : name, keyAuthorization);
        }
      },
      challengeRemoveFn: async (authz, challenge, keyAuthorization) => {
        const name = authz.identifier.value;
        const type: string = challenge.type;
        if (type === 'tls-alpn-01') await req.book.removeTlsAlpn(name);
        else if (challenge.type === 'http-01') await req.book.removeHttp(challenge.token);
        else if (challenge.type === 'dns-01') await runDns01Hook(req.dns01Hook!, 'remove', authz.wildcard ? `*.${name}` : name, keyAuthorization);
      },
    });
    return { key: key.toString('utf8'), cert, names: [...req.names], notAfter: certNotAfter(cert).toISOString() };
  } catch (e) {
    if (e instanceof TaasError) throw e;
    throw new TaasError('TAAS_ACME_ORDER_FAILED', `ACME order for ${req.names.join(', ')} at ${req.directoryUrl} failed: ${oneLine(e)}`, { cause: e });
  }
}
