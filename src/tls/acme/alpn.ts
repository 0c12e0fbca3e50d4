/**
 * TLS-ALPN-01 inside a TLS server (RFC 8737): a handshake that offers `acme-tls/1` gets the
 * pending challenge certificate for its server name, that handshake only; every other
 * handshake gets the usual certificate and ALPN answer. Used by the registrar's listener and
 * by `taas-agent --acme`, so it works whatever sits in front (a shared-port classifier, the
 * relay's pairing).
 *
 * Why both callbacks: Node picks the certificate in SNICallback and the protocol in
 * ALPNCallback; both run with the handshake's TLSSocket as `this`. With TLS 1.3 (what every
 * ACME validator negotiates: Let's Encrypt's and pebble's are Go's crypto/tls) OpenSSL asks for
 * ALPN first, so the socket is marked and SNICallback then gives the challenge certificate.
 * With TLS 1.2 OpenSSL chooses the certificate first; an `acme-tls/1` offer that comes after
 * the usual certificate was chosen is refused (RFC 8737 §3: never answer acme-tls/1 with
 * another certificate).
 */
import type tls from 'node:tls';
import { ACME_TLS_ALPN } from '../../protocol/index.js';
import type { ChallengeBook } from './challenges.js';

const OFFERED_ACME = Symbol('taas.acmeOffered');
const CERT_CHOSEN = Symbol('taas.certChosen');

type Marked = tls.TLSSocket & { [OFFERED_ACME]?: boolean; [CERT_CHOSEN]?: boolean };
type SniCallback = (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) => void;

export interface AcmeTlsOptions {
  /** The usual SNI answer (registrar certificate, minted label leaf, the agent's certificate). */
  sni: SniCallback;
  /** The protocol for a handshake that is not a validation, or undefined to refuse it. */
  select: (protocols: string[]) => string | undefined;
}

/** ALPNCallback and SNICallback for tls.createServer / new tls.TLSSocket options. */
export function acmeTlsHandlers(book: ChallengeBook, opts: AcmeTlsOptions): { ALPNCallback: (info: { servername: string; protocols: string[] }) => string | undefined; SNICallback: SniCallback } {
  function ALPNCallback(this: Marked, info: { servername: string; protocols: string[] }): string | undefined {
    if (!info.protocols.includes(ACME_TLS_ALPN)) return opts.select(info.protocols);
    if (this[CERT_CHOSEN]) return undefined; // TLS 1.2: too late to give the challenge certificate
    this[OFFERED_ACME] = true;
    return ACME_TLS_ALPN;
  }
  function SNICallback(this: Marked, servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void {
    this[CERT_CHOSEN] = true;
    if (!this[OFFERED_ACME]) return opts.sni(servername, cb);
    book.tlsAlpnContext(servername).then(
      (ctx) => (ctx ? cb(null, ctx) : cb(new Error(`no ACME challenge pending for ${servername}`))),
      (e: Error) => cb(e),
    );
  }
  return { ALPNCallback: ALPNCallback as never, SNICallback: SNICallback as never };
}

/** The registrar speaks HTTP/1.1 only: that, when offered, else the handshake is refused. */
export function selectHttp11(protocols: string[]): string | undefined {
  return protocols.includes('http/1.1') ? 'http/1.1' : undefined;
}

/**
 * A TLS terminator in front of an unknown target (the agent): HTTP/1.1 when offered (the
 * target of a browser is a web server), else the client's first choice, passed on as is.
 */
export function selectPassOn(protocols: string[]): string | undefined {
  if (protocols.includes('http/1.1')) return 'http/1.1';
  return protocols.find((p) => p !== ACME_TLS_ALPN);
}
