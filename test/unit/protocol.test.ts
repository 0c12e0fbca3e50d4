import { describe, expect, it } from 'vitest';
import {
  parseTotpAuthorization, formatTotpAuthorization, normaliseHost, routeHost, isValidLabel, parseEndpoint, formatEndpoint,
  formatLocation, labelHost, nodeHost, scanCookieLine, formatCookieLine, newCookie, parseRegistrarPath, parseAgentFile, isReservedLabel,
  parseSessionAuthorization, issueSessionToken, verifySessionToken, authScheme,
} from '../../src/protocol/index.js';
import { isTaasError } from '../../src/errors.js';

const code = (f: () => unknown) => {
  try {
    f();
    return 'ok';
  } catch (e) {
    return isTaasError(e) ? e.code : 'THREW';
  }
};

describe('TOTP Authorization header', () => {
  it('parses the original format, either order, and round-trips', () => {
    expect(parseTotpAuthorization('TOTP username="abc-1", response="123456"')).toEqual({ id: 'abc-1', token: '123456' });
    expect(parseTotpAuthorization('totp response="12345678",username="x"')).toEqual({ id: 'x', token: '12345678' });
    expect(parseTotpAuthorization(formatTotpAuthorization({ id: 'id', token: '000111' }))).toEqual({ id: 'id', token: '000111' });
  });
  it.each([
    'Basic dXNlcjpwYXNz', 'TOTP', 'TOTP username="a"', 'TOTP username="a", response="12345"', 'TOTP username="a", response="abcdef"',
    'TOTP username="a", response="123456", response="123456"', 'TOTP username="a", response="123456", x="y"',
    'TOTP username="a\r\nX: y", response="123456"', 'TOTP username="", response="123456"', 'TOTP username="' + 'a'.repeat(600) + '", response="123456"',
    'TOTP username="../etc", response="123456"',
  ])('refuses %j as malformed', (h) => {
    expect(code(() => parseTotpAuthorization(h))).toBe('TAAS_AUTH_MALFORMED');
  });
});

describe('Host and labels', () => {
  it('normalises case, port, trailing dot and IPv6 literals', () => {
    expect(normaliseHost('Demo.LocalHost:8443')).toBe('demo.localhost');
    expect(normaliseHost('demo.localhost.')).toBe('demo.localhost');
    expect(normaliseHost('[::1]:8443')).toBe('::1');
    expect(normaliseHost('[::1')).toBeNull();
    expect(normaliseHost('a b')).toBeNull();
    expect(normaliseHost('a..b')).toBeNull();
    expect(normaliseHost('host:port')).toBeNull();
    expect(normaliseHost(undefined)).toBeNull();
  });
  it('routes registrar, label and unknown hosts', () => {
    expect(routeHost('registrar.localhost', 'registrar.localhost', 'localhost')).toEqual({ kind: 'registrar' });
    expect(routeHost('demo.localhost', 'registrar.localhost', 'localhost')).toEqual({ kind: 'label', label: 'demo' });
    expect(routeHost('a.b.localhost', 'registrar.localhost', 'localhost')).toEqual({ kind: 'unknown' });
    expect(routeHost('example.com', 'registrar.localhost', 'localhost')).toEqual({ kind: 'unknown' });
  });
  it('follows DNS label rules and refuses reserved names', () => {
    expect(isValidLabel('demo-1')).toBe(true);
    expect(isValidLabel('-demo')).toBe(false);
    expect(isValidLabel('a'.repeat(64))).toBe(false);
    expect(isValidLabel('Demo')).toBe(false);
    expect(isReservedLabel('registrar', 'registrar.localhost')).toBe(true);
    expect(isReservedLabel('demo', 'registrar.localhost')).toBe(false);
  });
});

describe('endpoints and Location', () => {
  it('brackets IPv6 and parses both forms', () => {
    expect(formatEndpoint('::1', 40000)).toBe('[::1]:40000');
    expect(formatEndpoint('127.0.0.1', 40000)).toBe('127.0.0.1:40000');
    expect(parseEndpoint('[::1]:40000')).toEqual({ host: '::1', port: 40000 });
    expect(parseEndpoint('relay.example.com:443')).toEqual({ host: 'relay.example.com', port: 443 });
    expect(parseEndpoint('x:70000')).toBeNull();
    expect(parseEndpoint('nohost')).toBeNull();
  });
  it('keeps path and query and escapes anything that could split a header', () => {
    expect(formatLocation('https', '127.0.0.1', 41000, '/a/b?x=1&y=%20')).toBe('https://127.0.0.1:41000/a/b?x=1&y=%20');
    const loc = formatLocation('https', 'h', 1, '/x\r\nSet-Cookie: a=b');
    expect(loc).not.toMatch(/[\r\n ]/);
    expect(loc).toBe('https://h:1/x%0D%0ASet-Cookie:%20a=b');
  });
});

describe('advertised hosts', () => {
  it('puts the label into a per-label template, and keeps a node name for the node itself', () => {
    expect(labelHost({ taasHost: '127.0.0.1' }, 'demo')).toBe('127.0.0.1');
    expect(labelHost({ taasHost: '127.0.0.1', advertiseHost: '{label}.taas.example' }, 'demo')).toBe('demo.taas.example');
    expect(nodeHost({ taasHost: '127.0.0.1', advertiseHost: '{label}.taas.example' })).toBe('127.0.0.1');
    expect(nodeHost({ taasHost: '0.0.0.0', advertiseHost: 'relay.example' })).toBe('relay.example');
  });
});

describe('TAAS-Cookie line', () => {
  it('finds the cookie and returns the bytes after it', () => {
    const c = newCookie();
    expect(c.length).toBeGreaterThanOrEqual(22);
    const r = scanCookieLine(Buffer.concat([Buffer.from(formatCookieLine(c)), Buffer.from('SSH-2.0-x\r\n')]));
    expect(r.kind).toBe('cookie');
    if (r.kind === 'cookie') {
      expect(r.token).toBe(c);
      expect(r.rest.toString()).toBe('SSH-2.0-x\r\n');
    }
  });
  it('needs more on a prefix, reports absence and malformed lines', () => {
    expect(scanCookieLine(Buffer.from('TAAS-Coo')).kind).toBe('need-more');
    expect(scanCookieLine(Buffer.from('\x16\x03\x01')).kind).toBe('absent');
    expect(scanCookieLine(Buffer.from('TAAS-Cookie short\r\n')).kind).toBe('malformed');
    expect(scanCookieLine(Buffer.from('TAAS-Cookie ' + 'a'.repeat(200))).kind).toBe('malformed');
  });
});

describe('registrar paths', () => {
  it('accepts /register/LABEL and /pairings/LABEL only, without decoding', () => {
    expect(parseRegistrarPath('/register/demo')).toEqual({ kind: 'register', label: 'demo' });
    expect(parseRegistrarPath('/register/Demo?x=1')).toEqual({ kind: 'register', label: 'demo' });
    expect(parseRegistrarPath('/pairings/demo')).toEqual({ kind: 'pairings', label: 'demo' });
    expect(parseRegistrarPath('/register/../x').kind).toBe('none');
    expect(parseRegistrarPath('/register/a%2Fb').kind).toBe('invalid-label');
    expect(parseRegistrarPath('/register/a%00').kind).toBe('invalid-label');
    expect(parseRegistrarPath('/other').kind).toBe('none');
  });
});

describe('session tokens', () => {
  const secret = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP';
  it('verifies a genuine token from the bound address only, until it expires', () => {
    const t = issueSessionToken(secret, 'id1', 60, '127.0.0.1', 1_000_000);
    expect(verifySessionToken(secret, 'id1', t, '127.0.0.1', 1_000_000)).toBe(true);
    expect(verifySessionToken(secret, 'id1', t, '127.0.0.2', 1_000_000)).toBe(false);
    expect(verifySessionToken(secret, 'id2', t, '127.0.0.1', 1_000_000)).toBe(false);
    expect(verifySessionToken('KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU', 'id1', t, '127.0.0.1', 1_000_000)).toBe(false);
    expect(verifySessionToken(secret, 'id1', t, '127.0.0.1', 1_000_000 + 61_000)).toBe(false);
    expect(verifySessionToken(secret, 'id1', t.slice(0, -2) + 'AA', '127.0.0.1', 1_000_000)).toBe(false);
  });
  it('parses the session Authorization scheme', () => {
    expect(authScheme('TAAS-Session username="a", token="v1.1.x.y"')).toBe('session');
    expect(authScheme('TOTP username="a"')).toBe('totp');
    expect(authScheme('Bearer x')).toBe('other');
    expect(parseSessionAuthorization('TAAS-Session username="a", token="v1.1.x.y"')).toEqual({ id: 'a', token: 'v1.1.x.y' });
    expect(code(() => parseSessionAuthorization('TAAS-Session username="a"'))).toBe('TAAS_AUTH_MALFORMED');
  });
});

describe('agent file', () => {
  const good = { id: 'abc', secret: 'JBSWY3DPEHPK3PXP', labels: ['demo'], registrar: 'registrar.localhost', server: { host: '127.0.0.1', port: 8443 }, ca: '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----' };
  it('accepts a valid file with defaults for the TOTP parameters', () => {
    expect(parseAgentFile(JSON.stringify(good))).toMatchObject({ algorithm: 'SHA1', digits: 6, period: 30 });
  });
  it.each([
    ['not json', '{'],
    ['no labels', JSON.stringify({ ...good, labels: [] })],
    ['bad port', JSON.stringify({ ...good, server: { host: 'h', port: 0 } })],
    ['bad secret', JSON.stringify({ ...good, secret: '!!!' })],
    ['no ca', JSON.stringify({ ...good, ca: 'x' })],
  ])('refuses a file with %s, naming the file', (_why, text) => {
    expect(() => parseAgentFile(text, 'f.json')).toThrow(/agent file f\.json: /);
  });
});
