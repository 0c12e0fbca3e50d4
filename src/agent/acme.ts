/**
 * `taas-agent --acme`: the hidden server's own public certificate for its labels
 * (`LABEL.<domain>`), ordered and renewed here so that its private key never leaves the hidden
 * server. The CA's TLS-ALPN-01 connection for the name reaches the agent through the relay
 * (SNI passthrough on a shared port, or the label's fixed client port) and is paired with an
 * idle responder like any client: the responders' TLS (`--acme` implies terminating TLS, as
 * `--tls` does) answers `acme-tls/1` with the pending challenge certificate, everyone else with
 * the current certificate. Until the first certificate is issued, a throw-away self-signed one
 * stands in. Key, certificate and account key live in `dir`, mode 0600.
 */
import tls from 'node:tls';
import { acmeTlsHandlers, selectPassOn } from '../tls/acme/alpn.js';
import { ChallengeBook } from '../tls/acme/challenges.js';
import { CertificateKeeper } from '../tls/acme/keeper.js';
import { keyTypeOf } from '../tls/acme/order.js';
import { AcmeStorage } from '../tls/acme/storage.js';
import { makeRegistrarCert } from '../tls/certs.js';
import type { Logger } from './log.js';

export const LETS_ENCRYPT = 'https://acme-v02.api.letsencrypt.org/directory';

export interface AgentAcmeOptions {
  directoryUrl: string;
  email?: string;
  /** PEM file trusted for the directory's HTTPS (a private CA such as pebble's). */
  caFile?: string;
  /** The names to certify: LABEL.<domain> for each label the agent registers. */
  names: string[];
  /** Where the key, certificate and account key are kept. */
  dir: string;
  renewBeforeDays: number;
  checkInterval: number;
  log: Logger;
}

/** The TLS settings each responder's TLSSocket takes (Node's server-side options). */
export interface ResponderTls {
  secureContext: tls.SecureContext;
  ALPNCallback: (info: { servername: string; protocols: string[] }) => string | undefined;
  SNICallback: (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) => void;
}

export class AgentAcme {
  readonly book = new ChallengeBook();
  private context: tls.SecureContext;
  /** The key behind `context`: the challenge certificate's key type follows it. */
  private contextKey: string;
  private readonly keeper: CertificateKeeper;
  private readonly handlers: Omit<ResponderTls, 'secureContext'>;

  constructor(private readonly opts: AgentAcmeOptions) {
    const stand = makeRegistrarCert({ dns: opts.names, ips: [] }, opts.names[0] ?? 'taas-agent', 1);
    this.context = tls.createSecureContext({ key: stand.key, cert: stand.cert, minVersion: 'TLSv1.2' });
    this.contextKey = stand.key;
    this.handlers = acmeTlsHandlers(this.book, { sni: (_name, cb) => cb(null, this.context), select: selectPassOn });
    const settings = { directoryUrl: opts.directoryUrl, email: opts.email, caFile: opts.caFile, challenge: 'tls-alpn-01' as const, renewBeforeDays: opts.renewBeforeDays, checkInterval: opts.checkInterval };
    this.keeper = new CertificateKeeper({
      subject: opts.names[0]!,
      settings: () => settings,
      names: async () => opts.names,
      storage: new AcmeStorage(opts.dir, opts.names[0]!, null, null),
      book: this.book,
      log: opts.log,
      holder: 'agent',
      onCertificate: (c) => {
        // New handshakes get the new certificate; established ones keep theirs.
        this.context = tls.createSecureContext({ key: c.key, cert: c.cert, minVersion: 'TLSv1.2' });
        this.contextKey = c.key;
      },
      challengeKeyType: () => keyTypeOf(this.contextKey),
    });
  }

  /** Loads the stored certificate and starts ordering/renewing in the background. */
  start(): Promise<void> {
    return this.keeper.start();
  }

  /** The settings for the next responder's TLS: the certificate of the moment, the ACME answers. */
  responderTls(): ResponderTls {
    return { secureContext: this.context, ...this.handlers };
  }

  get current() {
    return this.keeper.current;
  }

  stop(): void {
    this.keeper.stop();
  }
}
