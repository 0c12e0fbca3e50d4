/**
 * Property-based tests of every parser in src/protocol (and the two that read stored or
 * credential bytes elsewhere: TOTP verification and the SecretBox), 10,000 cases each. Inputs
 * are arbitrary strings and bytes mixed with the grammar's own pieces, so that the cases reach
 * deep into each parser. The boundary: a parser returns a value or throws a TaasError with a
 * code; never a TypeError, RangeError or anything else. Where a parser returns, what it
 * returns keeps its promise (valid label, digits-only token, URI-safe Location, ...).
 */
import net from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { verifyTotp } from '../../src/auth/totp.js';
import { ERROR_CODES, TaasError } from '../../src/errors.js';
import {
  advertisedHost,
  authScheme,
  cookieEquals,
  errorBody,
  isReservedLabel,
  formatLocation,
  formatTotpAuthorization,
  isCookieToken,
  isValidId,
  isValidLabel,
  normaliseHost,
  parseAgentFile,
  parseEndpoint,
  parseRegistrarPath,
  parseRetryAfter,
  parseSessionAuthorization,
  parseProxyHeader,
  parseTotpAuthorization,
  PROXY_V1_MAX,
  PROXY_V2_MAX,
  routeHost,
  safePathAndQuery,
  scanCookieLine,
  sessionTokenExpiry,
  verifySessionToken,
} from '../../src/protocol/index.js';
import { parseEntryLine } from '../../src/store/migrate.js';
import { SecretBox } from '../../src/store/secret-box.js';

const RUNS = { numRuns: 10_000 };

/** Calls `fn`; passes if it returns, or throws a TaasError with a known code. */
function withinBoundary<T>(fn: () => T): T | TaasError {
  try {
    return fn();
  } catch (e) {
    if (e instanceof TaasError && e.code in ERROR_CODES) return e;
    throw new Error(`threw past its boundary: ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
  }
}

/** Strings built from a grammar's pieces and arbitrary (also non-ASCII, control) characters. */
function grammar(pieces: string[], maxLength = 30): fc.Arbitrary<string> {
  return fc
    .array(fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...pieces) }, { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 4 }) }, { weight: 1, arbitrary: fc.string({ maxLength: 6 }) }), { maxLength })
    .map((p) => p.join(''));
}

const anyText = fc.oneof(fc.string({ unit: 'binary', maxLength: 600 }), fc.string({ unit: 'grapheme-composite', maxLength: 200 }), fc.string({ maxLength: 60 }));
const idChars = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,40}$/);
const digits = fc.stringMatching(/^\d{6,10}$/);

describe('TOTP Authorization header', () => {
  const pieces = ['TOTP', 'totp', ' ', '\t', 'username', 'response', 'realm', '=', '"', ',', '\\', '\r', '\n', '123456', '0000000000', 'abc-def', '\u0000', '\u00e9', 'TAAS-Session'];
  it('never throws past its boundary; accepted values are a valid ID and 6-10 digits', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, grammar(pieces)), (s) => {
        const r = withinBoundary(() => parseTotpAuthorization(s));
        if (!(r instanceof TaasError)) {
          expect(isValidId(r.id)).toBe(true);
          expect(r.token).toMatch(/^\d{6,10}$/);
        } else expect(r.code).toBe('TAAS_AUTH_MALFORMED');
      }),
      RUNS,
    );
  });
  it('round-trips what the agent sends, whatever the spacing and order', () => {
    fc.assert(
      fc.property(idChars, digits, fc.boolean(), fc.constantFrom(' ', '  ', '\t', ' \t '), (id, token, swap, sp) => {
        const a = `username${sp}=${sp}"${id}"`;
        const b = `response="${token}"`;
        const header = `TOTP${sp.length ? sp : ' '}${swap ? `${b},${sp}${a}` : `${a},${sp}${b}`}`;
        expect(parseTotpAuthorization(header)).toEqual({ id, token });
        expect(parseTotpAuthorization(formatTotpAuthorization({ id, token }))).toEqual({ id, token });
      }),
      RUNS,
    );
  });
});

describe('PROXY header (the pairing signal; more in test/unit/proxy-header.test.ts)', () => {
  const pieces = ['PROXY ', 'TCP4 ', 'TCP6 ', 'UNKNOWN', '127.0.0.1 ', '::1 ', '65535 ', '0 ', '\r\n', '\n', '\r\n\r\n\u0000\r\nQUIT\n', '\u0021\u0011\u0000\u000c', '\u0021\u0021\u0000\u0024', '\u0020\u0000\u0000\u0000'];
  it('never throws; a header lies within its bound, and an address it reports is an IP literal', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, grammar(pieces)), (s) => {
        const h = parseProxyHeader(Buffer.from(s, 'latin1'));
        if (h.kind !== 'header') return;
        expect(h.length).toBeLessThanOrEqual(h.version === 'v1' ? PROXY_V1_MAX : PROXY_V2_MAX);
        if (h.addresses) expect(net.isIP(h.addresses.clientAddress) * net.isIP(h.addresses.relayAddress)).toBeGreaterThan(0);
      }),
      RUNS,
    );
  });
});

describe('session Authorization header and token', () => {
  const pieces = ['TAAS-Session', 'taas-session', ' ', 'username', 'token', '=', '"', ',', 'v1.', '.', '9999999999', 'abc', '\r\n', '\u0000'];
  it('parseSessionAuthorization and authScheme never throw past their boundary', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, grammar(pieces)), (s) => {
        const scheme = withinBoundary(() => authScheme(s));
        expect(['totp', 'session', 'other']).toContain(scheme);
        const r = withinBoundary(() => parseSessionAuthorization(s));
        if (!(r instanceof TaasError)) {
          expect(isValidId(r.id)).toBe(true);
          expect(r.token).toMatch(/^[A-Za-z0-9._-]{1,200}$/);
        }
      }),
      RUNS,
    );
  });
  it('verifySessionToken and sessionTokenExpiry never throw and accept no forged token', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, grammar(['v1', '.', '9999999999', '0', 'AAAA', '-', '_'], 12)), (tok) => {
        expect(withinBoundary(() => verifySessionToken('JBSWY3DPEHPK3PXP', 'id-1', tok, '127.0.0.1'))).toBe(false);
        const exp = withinBoundary(() => sessionTokenExpiry(tok));
        expect(exp === null || Number.isFinite(exp)).toBe(true);
      }),
      RUNS,
    );
  });
});

describe('Host, labels and IDs', () => {
  const pieces = ['registrar', 'localhost', 'demo', '.', '..', ':', ':8443', ':99999', '[', ']', '::1', '-', 'A', 'Ä', '\u0000', ' ', '@', '/', '%2e'];
  it('normaliseHost returns null or a lowercase host; routeHost yields only valid labels', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, grammar(pieces)), (raw) => {
        const h = withinBoundary(() => normaliseHost(raw));
        expect(h instanceof TaasError).toBe(false);
        if (h !== null) expect(h).toMatch(/^[a-z0-9.:-]+$/);
        const route = withinBoundary(() => routeHost(h as string | null, 'registrar.localhost', 'localhost'));
        if (!(route instanceof TaasError) && route.kind === 'label') {
          expect(isValidLabel(route.label)).toBe(true);
          expect(`${route.label}.localhost`).toBe(h);
        }
      }),
      RUNS,
    );
  });
  it('isValidLabel and isValidId agree with their rules', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, grammar(['a', 'z', '0', '-', '.', '_', 'A'], 70)), (s) => {
        const label = withinBoundary(() => isValidLabel(s));
        if (label === true) expect(s).toMatch(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/);
        const id = withinBoundary(() => isValidId(s));
        if (id === true) expect(s.length).toBeLessThanOrEqual(128);
      }),
      RUNS,
    );
  });
});

describe('registrar paths', () => {
  const pieces = ['/', 'register', 'pairings', 'demo', '..', '.', '%2F', '%2f', '%00', '\u0000', '?', '#', 'DEMO', '-', '//'];
  it('parseRegistrarPath decodes nothing and yields only valid lowercase labels', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, grammar(pieces), fc.string({ minLength: 2000, maxLength: 2100 })), (url) => {
        const r = withinBoundary(() => parseRegistrarPath(url));
        expect(r instanceof TaasError).toBe(false);
        if (!(r instanceof TaasError) && (r.kind === 'register' || r.kind === 'pairings')) {
          expect(isValidLabel(r.label)).toBe(true);
          expect(url.toLowerCase()).toContain(`/${r.kind}/${r.label}`);
        }
      }),
      RUNS,
    );
  });
});

describe('Location and endpoints', () => {
  it('formatLocation never lets a request character out unescaped', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, grammar(['/', '?', '&', '#', '\r', '\n', '"', '<', '>', ' ', '%0d%0a', '\\', '\u2028', '\ud800'])), (p) => {
        const loc = withinBoundary(() => formatLocation('https', '127.0.0.1', 40000, p));
        expect(loc).toMatch(/^https:\/\/127\.0\.0\.1:40000\/[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*$/);
        expect(withinBoundary(() => safePathAndQuery(p))).not.toMatch(/[\r\n\s"<>\\]/);
      }),
      RUNS,
    );
  });
  it('parseEndpoint returns null or a host and a port 1..65535', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, grammar(['127.0.0.1', ':', '[', ']', '::1', '443', '0', '65536', ' ', 'host'])), (s) => {
        const e = withinBoundary(() => parseEndpoint(s));
        if (e !== null && !(e instanceof TaasError)) {
          expect(e.port).toBeGreaterThanOrEqual(1);
          expect(e.port).toBeLessThanOrEqual(65535);
          expect(e.host.length).toBeGreaterThan(0);
        }
      }),
      RUNS,
    );
  });
  it('parseRetryAfter returns null or a non-negative finite number', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, grammar(['1', '0', '99999999999', 'Tue, 24 Nov 2026 12:00:00 GMT', '-', ' ', 'GMT'])), (s) => {
        const v = withinBoundary(() => parseRetryAfter(s));
        expect(v === null || (typeof v === 'number' && Number.isFinite(v) && v >= 0)).toBe(true);
      }),
      RUNS,
    );
  });
});

describe('TAAS-Cookie line on an allocated port', () => {
  const pieces = ['TAAS-Cookie ', 'TAAS-Cookie', 'taas-cookie ', 'A'.repeat(24), 'abc_-', '\r\n', '\n', '\r', '\u0000', ' ', 'x'.repeat(130)];
  it('scanCookieLine classifies any bytes; a cookie is a valid token and `rest` is what followed', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)), grammar(pieces, 10).map((s) => Buffer.from(s, 'latin1'))), (buf) => {
        const r = withinBoundary(() => scanCookieLine(buf));
        expect(r instanceof TaasError).toBe(false);
        if (!(r instanceof TaasError) && r.kind === 'cookie') {
          expect(isCookieToken(r.token)).toBe(true);
          expect(Buffer.concat([Buffer.from(`TAAS-Cookie ${r.token}\r\n`, 'latin1'), r.rest]).equals(buf)).toBe(true);
        }
      }),
      RUNS,
    );
  });
});

describe('agent file', () => {
  it('parseAgentFile returns a valid file or throws TAAS_FILE_UNREADABLE, for any JSON or text', () => {
    const value = fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.boolean(), fc.array(fc.string(), { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 3 }));
    const shaped = fc.record(
      {
        id: fc.oneof(idChars, value),
        secret: fc.oneof(fc.constant('JBSWY3DPEHPK3PXP'), value),
        labels: fc.oneof(fc.constant(['demo']), value),
        registrar: fc.oneof(fc.constant('registrar.localhost'), value),
        server: fc.oneof(fc.constant({ host: '127.0.0.1', port: 8443 }), value),
        ca: fc.oneof(fc.constant('-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----'), value),
        digits: fc.oneof(fc.constantFrom(6, 8), value),
        period: fc.oneof(fc.constant(30), value),
        tls: value,
        servers: value,
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.oneof(anyText, shaped.map((o) => JSON.stringify(o)), fc.json()), (text) => {
        const r = withinBoundary(() => parseAgentFile(text, 'f.json'));
        if (r instanceof TaasError) expect(r.code).toBe('TAAS_FILE_UNREADABLE');
        else {
          expect(isValidId(r.id)).toBe(true);
          expect(r.labels.every(isValidLabel)).toBe(true);
        }
      }),
      RUNS,
    );
  });
});

describe('small helpers that see request bytes', () => {
  it('cookieEquals, isReservedLabel, advertisedHost and errorBody never throw; cookieEquals is equality', () => {
    fc.assert(
      fc.property(anyText, fc.oneof(anyText, fc.string({ unit: 'grapheme', maxLength: 30 })), (a, b) => {
        expect(withinBoundary(() => cookieEquals(a, b))).toBe(a === b);
        expect(withinBoundary(() => cookieEquals(a, a))).toBe(true);
        expect(typeof withinBoundary(() => isReservedLabel(a, b))).toBe('boolean');
        expect(typeof withinBoundary(() => advertisedHost(b, a))).toBe('string');
        const body = withinBoundary(() => errorBody('TAAS_BAD_REQUEST', a)) as string;
        expect(JSON.parse(body)).toEqual({ errorCode: 'TAAS_BAD_REQUEST', errorMsg: a });
      }),
      RUNS,
    );
  });
});

describe('store import lines (src/store/migrate.ts)', () => {
  it('parseEntryLine returns a valid entry or throws TAAS_FILE_UNREADABLE, never echoing the secret', () => {
    const value = fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.constant(null), fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 2 }));
    const shaped = fc.record(
      {
        id: fc.oneof(idChars, value),
        secret: fc.oneof(fc.constant('JBSWY3DPEHPK3PXP'), value),
        labels: fc.oneof(fc.constant(['demo']), value),
        clientPorts: fc.oneof(fc.constant({ demo: 2222 }), value),
        createdAt: fc.oneof(fc.constant('2026-01-01T00:00:00Z'), value),
        version: value,
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.oneof(anyText, shaped.map((o) => JSON.stringify(o)), fc.json()), (line) => {
        const r = withinBoundary(() => parseEntryLine(line, 1));
        if (r instanceof TaasError) {
          expect(r.code).toBe('TAAS_FILE_UNREADABLE');
          expect(r.message).not.toContain('JBSWY3DPEHPK3PXP');
        } else {
          expect(isValidId(r.id)).toBe(true);
          expect(r.labels.every(isValidLabel)).toBe(true);
        }
      }),
      RUNS,
    );
  });
});

describe('credential and stored-secret readers outside src/protocol', () => {
  it('verifyTotp never throws, whatever the token and secret', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, digits), fc.oneof(fc.constant('JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP'), anyText), (token, secret) => {
        const r = withinBoundary(() => verifyTotp(secret, token));
        expect(r === null || Number.isInteger(r)).toBe(true);
      }),
      RUNS,
    );
  });
  it('SecretBox.open refuses any forged or damaged sealed value with TAAS_FILE_UNREADABLE', () => {
    const box = new SecretBox([{ id: 'k1', key: Buffer.alloc(32, 7) }]);
    const genuine = box.seal('JBSWY3DPEHPK3PXP');
    const parts = genuine.split('.');
    const forged = fc.tuple(fc.nat({ max: 4 }), fc.oneof(fc.string({ maxLength: 30 }), fc.base64String({ maxLength: 40 }))).map(([i, v]) => parts.map((p, j) => (j === i ? v : p)).join('.'));
    fc.assert(
      fc.property(fc.oneof(anyText, forged, grammar(['v1', '.', 'k1', 'AAAA', '-', '_', '='], 12)), (s) => {
        const r = withinBoundary(() => box.open(s));
        if (!(r instanceof TaasError)) expect(s).toBe(genuine);
        else expect(r.code).toBe('TAAS_FILE_UNREADABLE');
      }),
      RUNS,
    );
  });
});
