import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { makeRegistrarCert, issueLeaf, registrarNames, isCa } from '../../src/tls/certs.js';

describe('certificates', () => {
  const ca = makeRegistrarCert(registrarNames('127.0.0.1', 'registrar.localhost', 'localhost'), 'registrar.localhost');
  it('makes a self-signed registrar CA with the documented SANs', () => {
    const x = new crypto.X509Certificate(ca.cert);
    expect(x.ca).toBe(true);
    expect(isCa(ca.cert)).toBe(true);
    expect(x.subjectAltName).toContain('DNS:registrar.localhost');
    expect(x.subjectAltName).toContain('DNS:*.localhost');
    expect(x.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(x.verify(x.publicKey)).toBe(true);
  });
  it('issues leaves that verify against it, with and without a given key', () => {
    const leaf = issueLeaf(ca, { dns: ['demo.localhost'], ips: ['127.0.0.1'] });
    const x = new crypto.X509Certificate(leaf.cert);
    expect(x.ca).toBe(false);
    expect(x.checkIssued(new crypto.X509Certificate(ca.cert))).toBe(true);
    expect(x.verify(new crypto.X509Certificate(ca.cert).publicKey)).toBe(true);
    expect(x.checkHost('demo.localhost')).toBe('demo.localhost');
    const again = issueLeaf(ca, { dns: ['other.localhost'], ips: [] }, { keyPem: leaf.key });
    expect(new crypto.X509Certificate(again.cert).publicKey.export({ format: 'der', type: 'spki' })).toEqual(x.publicKey.export({ format: 'der', type: 'spki' }));
  });
});
