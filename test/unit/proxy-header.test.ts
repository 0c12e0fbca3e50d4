/**
 * The PROXY protocol header (the pairing signal): what the relay formats, what the agent
 * parses. Round trips in both versions and both families, the specification's own examples,
 * every way a header can be cut short or broken, and properties over arbitrary bytes: the
 * parser never throws, never reads past its bound, and a header it accepts re-formats to itself.
 */
import net from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatProxyHeader, parseProxyHeader, PROXY_V1_MAX, PROXY_V2_MAX, PROXY_V2_SIGNATURE, type ProxyAddresses } from '../../src/protocol/index.js';

const V4: ProxyAddresses = { clientAddress: '203.0.113.7', clientPort: 51234, relayAddress: '198.51.100.1', relayPort: 20001 };
const V6: ProxyAddresses = { clientAddress: '2001:db8::7', clientPort: 1, relayAddress: '::1', relayPort: 65535 };

describe('PROXY header: format and parse', () => {
  it('v1: the specification line for IPv4 and IPv6', () => {
    expect(formatProxyHeader('v1', V4).toString()).toBe('PROXY TCP4 203.0.113.7 198.51.100.1 51234 20001\r\n');
    expect(formatProxyHeader('v1', V6).toString()).toBe('PROXY TCP6 2001:db8::7 ::1 1 65535\r\n');
  });

  it('v2: signature, PROXY command, AF_INET/STREAM, 12 octets of addresses (IPv4)', () => {
    const b = formatProxyHeader('v2', V4);
    expect(b.subarray(0, 12)).toEqual(PROXY_V2_SIGNATURE);
    expect([...b.subarray(12, 16)]).toEqual([0x21, 0x11, 0, 12]);
    expect([...b.subarray(16)]).toEqual([203, 0, 113, 7, 198, 51, 100, 1, 0xc8, 0x22, 0x4e, 0x21]);
  });

  it.each([
    ['v1', V4],
    ['v1', V6],
    ['v2', V4],
    ['v2', V6],
  ] as const)('%s round trip %o', (v, a) => {
    const b = formatProxyHeader(v, a);
    const h = parseProxyHeader(Buffer.concat([b, Buffer.from('client octets')]));
    expect(h).toMatchObject({ kind: 'header', version: v, length: b.length, addresses: a });
  });

  it('mixed families and IPv4-mapped addresses become one family (v4 when both are)', () => {
    const mapped = { ...V4, clientAddress: '::ffff:203.0.113.7', relayAddress: '::ffff:198.51.100.1' };
    expect(formatProxyHeader('v1', mapped).toString()).toBe('PROXY TCP4 203.0.113.7 198.51.100.1 51234 20001\r\n');
    const mixed = { ...V4, relayAddress: '::1' };
    expect(parseProxyHeader(formatProxyHeader('v2', mixed))).toMatchObject({ addresses: { clientAddress: '::ffff:203.0.113.7', relayAddress: '::1' } });
  });

  it('no usable address: UNKNOWN (v1) and LOCAL (v2), parsed as no address', () => {
    const none = { clientAddress: '', clientPort: 0, relayAddress: '', relayPort: 0 };
    expect(formatProxyHeader('v1', none).toString()).toBe('PROXY UNKNOWN\r\n');
    expect(parseProxyHeader(formatProxyHeader('v1', none))).toMatchObject({ kind: 'header', addresses: null });
    expect(parseProxyHeader(formatProxyHeader('v2', none))).toMatchObject({ kind: 'header', length: 16, addresses: null });
  });

  it('v2 TLVs after the addresses are skipped (length covers them)', () => {
    const b = formatProxyHeader('v2', V4);
    const tlv = Buffer.from([0x04, 0x00, 0x02, 0xab, 0xcd]); // PP2_TYPE_NOOP, 2 octets
    const withTlv = Buffer.concat([b, tlv]);
    withTlv.writeUInt16BE(12 + tlv.length, 14);
    expect(parseProxyHeader(Buffer.concat([withTlv, Buffer.from('x')]))).toMatchObject({ kind: 'header', length: 16 + 12 + 5, addresses: V4 });
  });

  it('every proper prefix of a header needs more', () => {
    for (const b of [formatProxyHeader('v1', V6), formatProxyHeader('v2', V6)]) {
      for (let i = 0; i < b.length; i++) expect(parseProxyHeader(b.subarray(0, i)).kind).toBe('need-more');
    }
  });

  it.each([
    ['other bytes', Buffer.from('GET / HTTP/1.1\r\n')],
    ['an SSH banner', Buffer.from('SSH-2.0-x\r\n')],
    ['v1 without CRLF', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n')],
    ['v1 with a bad family', Buffer.from('PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n')],
    ['v1 with a v6 address as TCP4', Buffer.from('PROXY TCP4 ::1 5.6.7.8 1 2\r\n')],
    ['v1 with a port past 65535', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n')],
    ['v1 with a leading-zero port', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n')],
    ['v1 too long', Buffer.from(`PROXY TCP6 ${'a'.repeat(PROXY_V1_MAX)}`)],
    ['v2 with version 3', Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x31, 0x11, 0, 12]), Buffer.alloc(12)])],
    ['v2 with command 2', Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x22, 0x11, 0, 12]), Buffer.alloc(12)])],
    ['v2 over UDP', Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x12, 0, 12]), Buffer.alloc(12)])],
    ['v2 shorter than its addresses', Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x21, 0, 12]), Buffer.alloc(12)])],
    ['v2 longer than the bound', Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x11, 0xff, 0xff])])],
  ])('%s: invalid, with a reason', (_what, b) => {
    const h = parseProxyHeader(b);
    expect(h.kind).toBe('invalid');
    if (h.kind === 'invalid') expect(h.reason).toMatch(/PROXY/);
  });
});

describe('PROXY header parser: properties (10,000 cases each)', () => {
  const pieces = fc.oneof(
    fc.uint8Array({ maxLength: 64 }).map((u) => Buffer.from(u)),
    fc.constantFrom(PROXY_V2_SIGNATURE, Buffer.from('PROXY '), Buffer.from('TCP4 '), Buffer.from('TCP6 '), Buffer.from('\r\n'), Buffer.from(' '), Buffer.from([0x21, 0x11]), Buffer.from([0x21, 0x21]), Buffer.from([0, 12])),
    fc.ipV4().map((a) => Buffer.from(a)),
    fc.ipV6().map((a) => Buffer.from(a)),
  );
  const bytes = fc.array(pieces, { maxLength: 10 }).map((a) => Buffer.concat(a));

  it('never throws; a header it accepts lies within its bound and re-formats to the same addresses', () => {
    fc.assert(
      fc.property(bytes, (b) => {
        const h = parseProxyHeader(b);
        if (h.kind !== 'header') return;
        expect(h.length).toBeLessThanOrEqual(h.version === 'v1' ? PROXY_V1_MAX : PROXY_V2_MAX);
        expect(h.length).toBeLessThanOrEqual(b.length);
        expect(h.raw).toEqual(b.subarray(0, h.length));
        if (h.addresses) expect(parseProxyHeader(formatProxyHeader(h.version, h.addresses))).toMatchObject({ addresses: h.addresses });
      }),
      { numRuns: 10_000 },
    );
  });

  it('writes IPv6 in its shortest form, so a long spelling keeps a v1 line within 107 octets (a case fast-check found)', () => {
    const src = '0000:00:000:0000:0000:00:100.100.10.100';
    const dst = '0000:0000:0000:0000:0000:0000:100.100.100.0';
    const line = formatProxyHeader('v1', { clientAddress: src, clientPort: 10000, relayAddress: dst, relayPort: 10000 });
    expect(line.toString('latin1')).toBe('PROXY TCP6 ::100.100.10.100 ::100.100.100.0 10000 10000\r\n');
    expect(parseProxyHeader(line).kind).toBe('header');
  });

  it('round-trips every IPv4 and IPv6 address and port in both versions', () => {
    const addr = fc.oneof(
      fc.tuple(fc.ipV4(), fc.ipV4()),
      fc.tuple(fc.ipV6(), fc.ipV6()),
    );
    fc.assert(
      fc.property(addr, fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 }), ([src, dst], sp, dp) => {
        for (const v of ['v1', 'v2'] as const) {
          const h = parseProxyHeader(formatProxyHeader(v, { clientAddress: src, clientPort: sp, relayAddress: dst, relayPort: dp }));
          expect(h.kind).toBe('header');
          if (h.kind !== 'header' || !h.addresses) throw new Error('no addresses');
          expect(h.addresses.clientPort).toBe(sp);
          expect(h.addresses.relayPort).toBe(dp);
          // The same address, whatever textual form fast-check chose (zero runs, case, leading zeros).
          expect(canonical(h.addresses.clientAddress)).toBe(canonical(src));
          expect(canonical(h.addresses.relayAddress)).toBe(canonical(dst));
        }
      }),
      { numRuns: 10_000 },
    );
  });
});

/** One text per address, by Node's own IPv6 parser (not the module under test). */
function canonical(a: string): string {
  return net.isIPv4(a) ? a : new net.SocketAddress({ address: a, family: 'ipv6' }).address;
}
