/**
 * Certificates of the relay. The registrar certificate made here (by `make-cert` or on the
 * embedded default's first start) is self-signed with CA:true, so it is also the relay's own
 * CA: it issues the label certificates that `taas-agent --tls` presents, and a client that
 * trusts this one file (curl --cacert) validates both legs. Keys are made by Node's crypto
 * (native, fast); node-forge builds and signs the X.509 structures.
 */
import crypto from 'node:crypto';
import net from 'node:net';
import forge from 'node-forge';

export interface KeyAndCert {
  key: string;
  cert: string;
}

export interface SubjectNames {
  dns: string[];
  ips: string[];
}

const DAY_MS = 86_400_000;

function newRsaKey(): { privatePem: string; publicKey: forge.pki.PublicKey; privateKey: forge.pki.PrivateKey } {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const privatePem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  return {
    privatePem,
    publicKey: forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString()),
    privateKey: forge.pki.privateKeyFromPem(privatePem),
  };
}

function altNames(names: SubjectNames): { type: number; value?: string; ip?: string }[] {
  return [...names.dns.map((value) => ({ type: 2, value })), ...names.ips.filter((ip) => net.isIP(ip)).map((ip) => ({ type: 7, ip }))];
}

function serial(): string {
  // Positive 128-bit serial (the leading nibble kept below 8 so DER sees no sign bit).
  const b = crypto.randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return b.toString('hex');
}

/** Names for the registrar: IP:taasHost, DNS:namedRegistrar, DNS:*.namedServers. */
export function registrarNames(taasHost: string, namedRegistrar: string, namedServers: string): SubjectNames {
  const ips = net.isIP(taasHost) ? [taasHost] : [];
  const dns = [namedRegistrar, `*.${namedServers}`, ...(net.isIP(taasHost) ? [] : [taasHost])];
  return { dns, ips };
}

/** A self-signed registrar certificate that is also a CA (pathlen 0: it signs leaves only). */
export function makeRegistrarCert(names: SubjectNames, commonName: string, validDays = 3650): KeyAndCert {
  const k = newRsaKey();
  const cert = forge.pki.createCertificate();
  cert.publicKey = k.publicKey;
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(Date.now() - DAY_MS);
  cert.validity.notAfter = new Date(Date.now() + validDays * DAY_MS);
  const attrs = [
    { name: 'commonName', value: commonName },
    { name: 'organizationName', value: 'taas-server relay CA' },
  ];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: altNames(names) },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(k.privateKey as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return { key: k.privatePem, cert: forge.pki.certificateToPem(cert) };
}

/** True when the certificate may sign others (our own registrar CA), so leaves can be issued. */
export function isCa(certPem: string): boolean {
  try {
    const x = new crypto.X509Certificate(certPem);
    return x.ca;
  } catch {
    return false;
  }
}

function keyFromPem(privatePem: string): ReturnType<typeof newRsaKey> {
  const privateKey = forge.pki.privateKeyFromPem(privatePem) as forge.pki.rsa.PrivateKey;
  return { privatePem, privateKey, publicKey: forge.pki.setRsaPublicKey(privateKey.n, privateKey.e) };
}

/**
 * A leaf certificate for `names`, signed by `ca`, with a fresh key or the given one (minting
 * SNI leaves reuses one key: a signature costs milliseconds, a key pair much more).
 * Leaves live 825 days (the platform cap for TLS leaves).
 */
export function issueLeaf(ca: KeyAndCert, names: SubjectNames, opts: { keyPem?: string; validDays?: number } = {}): KeyAndCert {
  const validDays = opts.validDays ?? 825;
  const caCert = forge.pki.certificateFromPem(ca.cert);
  const caKey = forge.pki.privateKeyFromPem(ca.key);
  const k = opts.keyPem ? keyFromPem(opts.keyPem) : newRsaKey();
  const cert = forge.pki.createCertificate();
  cert.publicKey = k.publicKey;
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(Date.now() - DAY_MS);
  cert.validity.notAfter = new Date(Date.now() + validDays * DAY_MS);
  cert.setSubject([{ name: 'commonName', value: names.dns[0] ?? names.ips[0] ?? 'taas' }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: altNames(names) },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(caKey as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return { key: k.privatePem, cert: forge.pki.certificateToPem(cert) };
}
