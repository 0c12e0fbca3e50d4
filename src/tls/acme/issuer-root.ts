/**
 * The root an ACME certificate chains to, for agent files: an agent trusts only the PEM in its
 * file, so once the registrar serves its ACME certificate the file must carry that
 * certificate's root beside the relay's own CA. The root is not in the chain a CA sends (leaf
 * and intermediates only); it is looked up among Node's public roots and `acme.rootFile`
 * (a private CA's root: pebble's, an in-house CA's).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import type { Config } from '../../config/schema.js';

const PEM = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function certs(pem: string): crypto.X509Certificate[] {
  const out: crypto.X509Certificate[] = [];
  for (const m of pem.match(PEM) ?? []) {
    try {
      out.push(new crypto.X509Certificate(m));
    } catch {
      /* not a certificate: skipped */
    }
  }
  return out;
}

/** PEM of the root that issued the top of `chainPem`, or null when none of the candidates did. */
export function issuingRoot(chainPem: string, extraRootsPem = ''): string | null {
  const chain = certs(chainPem);
  const top = chain[chain.length - 1];
  if (!top) return null;
  for (const root of [...certs(extraRootsPem), ...tls.rootCertificates.flatMap(certs)]) {
    if (top.checkIssued(root) && top.verify(root.publicKey)) return root.toString();
  }
  return null;
}

/** The root of the registrar's stored ACME certificate (`<dataDir>/acme/registrar.crt`), or null. */
export function storedAcmeRoot(config: Readonly<Config>, chainPem?: string): string | null {
  if (!config.acme) return null;
  let chain = chainPem;
  try {
    chain ??= fs.readFileSync(path.resolve(config.dataDir, 'acme', 'registrar.crt'), 'utf8');
  } catch {
    return null; // none ordered yet
  }
  let extra = '';
  try {
    if (config.acme.rootFile) extra = fs.readFileSync(config.acme.rootFile, 'utf8');
  } catch {
    /* an unreadable rootFile: public roots only (config check names it) */
  }
  return issuingRoot(chain, extra);
}
