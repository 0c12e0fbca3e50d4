/**
 * The registrar's TLS material: from the config (files or inline PEM) or generated into the
 * data dir on first start. When the certificate is our own CA, the registrar also answers SNI
 * for `LABEL.<namedServers>` with a leaf minted for exactly that name: clients (curl, Chromium)
 * refuse a wildcard directly under a one-label suffix such as `*.localhost`, and an explicit
 * name works everywhere. Reloaded on SIGHUP by building a new RelayTls and swapping it in.
 */
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import type { Config } from '../config/schema.js';
import { TaasError, oneLine } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { isCa, issueLeaf, makeRegistrarCert, registrarNames, type KeyAndCert } from './certs.js';
import { labelHost, locationHost } from '../protocol/endpoint.js';
import { isValidLabel } from '../protocol/names.js';
import { storedAcmeRoot } from './acme/issuer-root.js';

/** Minted SNI contexts kept; beyond this the oldest is dropped (bounded memory under a label scan). */
const SNI_CACHE = 1024;

export function generatedCertPaths(dataDir: string): { keyFile: string; certFile: string } {
  return { keyFile: path.resolve(dataDir, 'registrar.key'), certFile: path.resolve(dataDir, 'registrar.crt') };
}

function readPem(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new TaasError('TAAS_CONFIG_INVALID', `${what} ${file}: ${oneLine(e)}`);
  }
}

/** Writes a fresh registrar key (0600) and certificate; used by make-cert and first start. */
export function writeRegistrarCert(config: Readonly<Config>, keyFile: string, certFile: string): KeyAndCert {
  const kc = makeRegistrarCert(registrarNames(config.taasHost, config.namedRegistrar, config.namedServers), config.namedRegistrar);
  fs.mkdirSync(path.dirname(keyFile), { recursive: true, mode: 0o700 });
  writeFileAtomic(keyFile, kc.key, 0o600);
  writeFileAtomic(certFile, kc.cert, 0o644);
  return kc;
}

export class RelayTls {
  private readonly sni = new Map<string, tls.SecureContext>();
  private mintKey: KeyAndCert | null = null;
  readonly defaultContext: tls.SecureContext;

  private constructor(
    private readonly config: Readonly<Config>,
    readonly material: KeyAndCert,
    /** Where the material came from, for the start-up log. */
    readonly source: string,
    /** More PEM agents must trust: the root of the registrar's ACME certificate (config `acme`). */
    private readonly extraTrust: string | null = null,
  ) {
    try {
      this.defaultContext = tls.createSecureContext({ key: material.key, cert: material.cert, minVersion: 'TLSv1.2' });
    } catch (e) {
      throw new TaasError('TAAS_CONFIG_INVALID', `registrar certificate or key (${source}): ${oneLine(e)}`);
    }
  }

  /**
   * PEM of what clients and agents pin: our CA (or the operator's certificate), and with ACME
   * the root of the ACME certificate the registrar serves.
   */
  get caPem(): string {
    return this.extraTrust ? `${this.material.cert.trimEnd()}\n${this.extraTrust.trimEnd()}\n` : this.material.cert;
  }

  /** The same material, with agents also pinning `rootPem` (an ACME certificate's root). */
  withTrust(rootPem: string | null): RelayTls {
    return rootPem ? new RelayTls(this.config, this.material, this.source, rootPem) : this;
  }

  /** True when label certificates can be issued (the registrar certificate is our own CA). */
  get canIssue(): boolean {
    return isCa(this.material.cert);
  }

  /**
   * Loads the configured material, or the generated one in the data dir (creating it on first
   * start). Returns null only when nothing is configured and generation is off (plain HTTP).
   */
  static load(config: Readonly<Config>, opts: { generate?: boolean } = {}): RelayTls | null {
    return RelayTls.loadOwn(config, opts)?.withTrust(storedAcmeRoot(config)) ?? null;
  }

  private static loadOwn(config: Readonly<Config>, opts: { generate?: boolean }): RelayTls | null {
    if (config.keyData && config.crtData) return new RelayTls(config, { key: config.keyData, cert: config.crtData }, 'inline keyData/crtData');
    if (config.keyFile && config.certFile) {
      return new RelayTls(config, { key: readPem(config.keyFile, 'keyFile'), cert: readPem(config.certFile, 'certFile') }, config.certFile);
    }
    const { keyFile, certFile } = generatedCertPaths(config.dataDir);
    if (fs.existsSync(keyFile) && fs.existsSync(certFile)) {
      return new RelayTls(config, { key: readPem(keyFile, 'key'), cert: readPem(certFile, 'certificate') }, certFile);
    }
    if (opts.generate === false) return null;
    return new RelayTls(config, writeRegistrarCert(config, keyFile, certFile), `${certFile} (generated)`);
  }

  /** TLS from material obtained at run time (an ACME certificate and its key). */
  static fromMaterial(config: Readonly<Config>, material: KeyAndCert, source: string): RelayTls {
    return new RelayTls(config, material, source);
  }

  /** SNI: a minted leaf for `LABEL.<namedServers>` when we are the CA; the registrar cert otherwise. */
  contextFor(servername: string): tls.SecureContext {
    const name = servername.toLowerCase();
    const suffix = '.' + this.config.namedServers.toLowerCase();
    const label = name.slice(0, -suffix.length);
    // The registrar's own name is on its certificate already; only hidden servers' labels get leaves.
    if (!this.canIssue || name === this.config.namedRegistrar.toLowerCase() || !name.endsWith(suffix) || !isValidLabel(label)) return this.defaultContext;
    let ctx = this.sni.get(name);
    if (!ctx) {
      const leaf = issueLeaf(this.material, { dns: [name], ips: [] }, this.mintKey ? { keyPem: this.mintKey.key } : {});
      this.mintKey ??= leaf;
      ctx = tls.createSecureContext({ key: leaf.key, cert: leaf.cert, minVersion: 'TLSv1.2' });
      if (this.sni.size >= SNI_CACHE) this.sni.delete(this.sni.keys().next().value!);
      this.sni.set(name, ctx);
    }
    return ctx;
  }

  /**
   * Certificate for a hidden server's label (taas-agent --tls): valid for the label's name,
   * for the address Location points to, and for the advertised name when one is set; also for
   * `otherHosts`, where the other nodes of a multi-node relay send clients to their client ports.
   */
  issueForLabels(labels: string[], otherHosts: readonly string[] = []): KeyAndCert {
    if (!this.canIssue) throw new TaasError('TAAS_CONFIG_INVALID', 'the registrar certificate is not a CA, so label certificates cannot be issued (use make-cert, or give the hidden server its own certificate)');
    const dns = new Set<string>();
    const ips = new Set<string>();
    for (const label of labels) {
      dns.add(`${label}.${this.config.namedServers}`);
      for (const adv of [labelHost(this.config, label), locationHost(this.config, label)]) {
        if (/^[\d.]+$|:/.test(adv)) ips.add(adv);
        else dns.add(adv);
      }
    }
    if (/^[\d.]+$|:/.test(this.config.taasHost)) ips.add(this.config.taasHost);
    for (const h of otherHosts) (/^[\d.]+$|:/.test(h) ? ips : dns).add(h);
    return issueLeaf(this.material, { dns: [...dns], ips: [...ips] });
  }
}

