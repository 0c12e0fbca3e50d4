/**
 * The shared port's classifier (src/protocol/client-hello.ts) under hostile input, 10,000 cases
 * per property: arbitrary octets, ClientHellos built from the grammar (random SNI, ALPN, other
 * extensions) and then split over records, cut short or mutated. The boundary: it never throws,
 * never reads past what it was given, answers `need-more` only for a true prefix, and finds the
 * SNI a well-formed ClientHello carries whatever the record split. Real ClientHellos (OpenSSL
 * through Node, and curl) are in test/unit/client-hello.test.ts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_CLIENT_HELLO_BYTES, classifyFirstOctets, scanClientHello } from '../../src/protocol/index.js';
import { helloMessage, inRecords, type HelloParts } from '../helpers/client-hello.js';

const RUNS = { numRuns: 10_000 };

const labelArb = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?$/);
const hostArb = fc.array(labelArb, { minLength: 1, maxLength: 4 }).map((ls) => ls.join('.'));
const partsArb: fc.Arbitrary<HelloParts> = fc.record({
  sni: fc.option(fc.tuple(hostArb, fc.boolean()).map(([h, upper]) => (upper ? h.toUpperCase() : h)), { nil: null }),
  alpn: fc.array(fc.constantFrom('h2', 'http/1.1', 'acme-tls/1', 'x'), { maxLength: 3 }),
  // Types other than server_name (0) and ALPN (16), each once.
  others: fc.uniqueArray(fc.record({ type: fc.integer({ min: 17, max: 65535 }), data: fc.uint8Array({ maxLength: 40 }) }), { maxLength: 6, selector: (o) => o.type }),
  sessionId: fc.uint8Array({ maxLength: 32 }),
});

const KINDS = new Set(['need-more', 'not-tls', 'malformed', 'hello']);

describe('ClientHello classifier (property-based, 10,000 cases each)', () => {
  it('arbitrary octets: an answer, never an exception', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 2000 }), fc.uint8Array({ maxLength: 60 }).map((b) => Uint8Array.from([0x16, 3, 1, ...b]))), (bytes) => {
        const buf = Buffer.from(bytes);
        expect(KINDS.has(scanClientHello(buf).kind)).toBe(true);
        expect(classifyFirstOctets(buf).kind).toBeTypeOf('string');
      }),
      RUNS,
    );
  });

  it('a well-formed ClientHello in any split over records: its SNI (lowercased) and ALPN', () => {
    fc.assert(
      fc.property(partsArb, fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 8 }), (p, sizes) => {
        const wire = inRecords(helloMessage(p), sizes);
        const r = scanClientHello(wire);
        expect(r).toMatchObject({ kind: 'hello', sni: p.sni?.toLowerCase() ?? null, alpn: p.alpn, bytes: wire.length });
      }),
      RUNS,
    );
  });

  it('every true prefix is need-more; trailing octets after the ClientHello are not read', () => {
    fc.assert(
      fc.property(partsArb, fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 4 }), fc.double({ min: 0, max: 1, noNaN: true }), fc.uint8Array({ maxLength: 50 }), (p, sizes, at, tail) => {
        const wire = inRecords(helloMessage(p), sizes);
        const cut = Math.floor(at * (wire.length - 1));
        expect(scanClientHello(wire.subarray(0, cut)).kind).toBe('need-more');
        const r = scanClientHello(Buffer.concat([wire, Buffer.from(tail)]));
        expect(r).toMatchObject({ kind: 'hello', bytes: wire.length });
      }),
      RUNS,
    );
  });

  it('mutated ClientHellos: never an exception, and a host name only when it is a DNS name', () => {
    fc.assert(
      fc.property(partsArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), fc.nat(), (p, flips, cut) => {
        const wire = Buffer.from(inRecords(helloMessage(p), []));
        for (const [i, v] of flips) wire[i % wire.length] = v;
        const r = scanClientHello(wire.subarray(0, wire.length - (cut % 4)));
        expect(KINDS.has(r.kind)).toBe(true);
        if (r.kind === 'hello' && r.sni !== null) expect(r.sni).toMatch(/^[a-z0-9_.-]{1,253}$/);
      }),
      RUNS,
    );
  });

  it('a ClientHello longer than the bound is malformed from its header on, never need-more', () => {
    fc.assert(
      fc.property(fc.integer({ min: MAX_CLIENT_HELLO_BYTES - 3, max: 0xffffff }), (len) => {
        const head = Buffer.from([0x16, 3, 1, 0x40, 0x00, 1, (len >> 16) & 0xff, (len >> 8) & 0xff, len & 0xff]);
        expect(scanClientHello(head).kind).toBe('malformed');
      }),
      RUNS,
    );
  });
});
