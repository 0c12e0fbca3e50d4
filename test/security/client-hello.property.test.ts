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

const RUNS = { numRuns: 10_000 };

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
const vec16 = (b: Buffer) => Buffer.concat([u16(b.length), b]);
const vec8 = (b: Buffer) => Buffer.concat([Buffer.from([b.length]), b]);
const ext = (type: number, data: Buffer) => Buffer.concat([u16(type), vec16(data)]);

export interface HelloParts {
  sni: string | null;
  alpn: string[];
  others: { type: number; data: Uint8Array }[];
  sessionId: Uint8Array;
}

/** A ClientHello handshake message (header included) from its parts. */
export function helloMessage(p: HelloParts): Buffer {
  const exts: Buffer[] = [];
  if (p.sni !== null) exts.push(ext(0, vec16(Buffer.concat([Buffer.from([0]), vec16(Buffer.from(p.sni, 'latin1'))]))));
  if (p.alpn.length) exts.push(ext(16, vec16(Buffer.concat(p.alpn.map((a) => vec8(Buffer.from(a, 'latin1')))))));
  for (const o of p.others) exts.push(ext(o.type, Buffer.from(o.data)));
  const body = Buffer.concat([Buffer.from([3, 3]), Buffer.alloc(32, 7), vec8(Buffer.from(p.sessionId)), vec16(Buffer.from([0x13, 0x01, 0x13, 0x02])), vec8(Buffer.from([0])), vec16(Buffer.concat(exts))]);
  const len = Buffer.from([1, (body.length >> 16) & 0xff, (body.length >> 8) & 0xff, body.length & 0xff]);
  return Buffer.concat([len, body]);
}

/** The message in TLS handshake records of the given sizes (the last takes the rest). */
export function inRecords(msg: Buffer, sizes: number[]): Buffer {
  const out: Buffer[] = [];
  let off = 0;
  for (const s of [...sizes, msg.length]) {
    if (off >= msg.length) break;
    const part = msg.subarray(off, Math.min(msg.length, off + Math.max(1, s)));
    out.push(Buffer.from([0x16, 3, 1]), u16(part.length), part);
    off += part.length;
  }
  return Buffer.concat(out);
}

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
