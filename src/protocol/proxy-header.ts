/**
 * The PROXY protocol header (HAProxy's PROXY protocol, versions 1 and 2): the pairing signal.
 * When the relay pairs a mobile client with a responder that registered with a TAAS-Cookie, it
 * writes one header to the responder before the client's octets. It says that a client has
 * arrived (the agent connects to its target only then) and who the client is: its address and
 * port (source) and the relay's address and port it connected to (destination).
 *
 * v1 is one text line, `PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n`, at most 107 octets; v2 is a
 * 16-octet binary preamble (12-octet signature, version/command, family/protocol, length) and
 * the addresses. Only what the relay sends is produced (PROXY command, TCP over IPv4 or IPv6);
 * the parser also accepts LOCAL and UNKNOWN (no address) and skips v2 TLVs, as a receiver must.
 */
import net from 'node:net';

export type ProxyVersion = 'v1' | 'v2';

export interface ProxyAddresses {
  /** The mobile client (source) as the relay saw it. */
  clientAddress: string;
  clientPort: number;
  /** The relay's address and port the client connected to (destination). */
  relayAddress: string;
  relayPort: number;
}

/** v2's fixed signature: `\r\n\r\n\0\r\nQUIT\n`. */
export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** The longest v1 line the specification allows, CRLF included. */
export const PROXY_V1_MAX = 107;
/**
 * The largest v2 header accepted: preamble + 36 octets of IPv6 addresses + TLVs. The relay sends
 * none; 536 is the bound HAProxy's own receiver uses for the whole header.
 */
export const PROXY_V2_MAX = 16 + 520;

const V1_PREFIX = Buffer.from('PROXY ', 'ascii');

/** IPv4-mapped IPv6 (`::ffff:a.b.c.d`) as plain IPv4; other addresses unchanged. */
function unmap(a: string): string {
  const m = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(a);
  return m ? m[1]! : a;
}

/** Both ends in one family (the header has one): IPv4 when both are, else IPv6 with v4 mapped. */
function sameFamily(p: ProxyAddresses): { family: 4 | 6; src: string; dst: string } {
  const src = unmap(p.clientAddress.replace(/%.*$/, ''));
  const dst = unmap(p.relayAddress.replace(/%.*$/, ''));
  if (net.isIPv4(src) && net.isIPv4(dst)) return { family: 4, src, dst };
  // IPv6 in its shortest text: a long spelling ("0000:00:…") could push a v1 line past its 107 octets.
  const six = (a: string) => (net.isIPv4(a) ? `::ffff:${a}` : net.isIPv6(a) ? new net.SocketAddress({ address: a, family: 'ipv6' }).address : a);
  return { family: 6, src: six(src), dst: six(dst) };
}

/** The header for one pairing. Addresses that are not IP literals give an UNKNOWN/LOCAL header. */
export function formatProxyHeader(version: ProxyVersion, p: ProxyAddresses): Buffer {
  const { family, src, dst } = sameFamily(p);
  const known = net.isIP(src) !== 0 && net.isIP(dst) !== 0 && validPort(p.clientPort) && validPort(p.relayPort);
  if (version === 'v1') {
    if (!known) return Buffer.from('PROXY UNKNOWN\r\n', 'ascii');
    return Buffer.from(`PROXY TCP${family} ${src} ${dst} ${p.clientPort} ${p.relayPort}\r\n`, 'ascii');
  }
  if (!known) return Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]); // LOCAL, AF_UNSPEC
  const alen = family === 4 ? 12 : 36;
  const out = Buffer.alloc(16 + alen);
  PROXY_V2_SIGNATURE.copy(out, 0);
  out[12] = 0x21; // version 2, command PROXY
  out[13] = family === 4 ? 0x11 : 0x21; // AF_INET / AF_INET6, STREAM
  out.writeUInt16BE(alen, 14);
  const asz = family === 4 ? 4 : 16;
  ipBytes(src, family).copy(out, 16);
  ipBytes(dst, family).copy(out, 16 + asz);
  out.writeUInt16BE(p.clientPort, 16 + 2 * asz);
  out.writeUInt16BE(p.relayPort, 18 + 2 * asz);
  return out;
}

function validPort(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 65535;
}

function ipBytes(a: string, family: 4 | 6): Buffer {
  if (family === 4) return Buffer.from(a.split('.').map(Number));
  // An embedded IPv4 tail (`::ffff:1.2.3.4`) becomes its two 16-bit words first.
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a);
  const text = v4 ? a.slice(0, v4.index) + [(+v4[1]! << 8) | +v4[2]!, (+v4[3]! << 8) | +v4[4]!].map((w) => w.toString(16)).join(':') : a;
  const [head = '', tail] = text.split('::');
  const words = (s: string) => (s === '' ? [] : s.split(':'));
  const h = words(head);
  const t = tail === undefined ? [] : words(tail);
  const all = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  all.forEach((w, i) => out.writeUInt16BE(parseInt(w, 16), i * 2));
  return out;
}

function ipString(b: Buffer): string {
  if (b.length === 4) return [...b].join('.');
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(b.readUInt16BE(i).toString(16));
  // Canonical text (RFC 5952): SocketAddress compresses the longest run of zero words.
  return new net.SocketAddress({ address: words.join(':'), family: 'ipv6' }).address;
}

export type ProxyParse =
  | { kind: 'need-more' }
  /** The bytes are not a PROXY header (or break its rules); `reason` names how, in one line. */
  | { kind: 'invalid'; reason: string }
  /**
   * A complete header of `length` octets. `addresses` is null for LOCAL / UNKNOWN (no address
   * carried). `raw` is the header as received, to pass on unchanged.
   */
  | { kind: 'header'; version: ProxyVersion; length: number; addresses: ProxyAddresses | null; raw: Buffer };

/** Reads a PROXY header (either version) from the first octets of a stream. */
export function parseProxyHeader(buf: Buffer): ProxyParse {
  if (buf.length === 0) return { kind: 'need-more' };
  if (buf[0] === PROXY_V2_SIGNATURE[0] && buf.length >= 1) {
    const n = Math.min(buf.length, 12);
    if (buf.subarray(0, n).equals(PROXY_V2_SIGNATURE.subarray(0, n))) return parseV2(buf);
  }
  const n = Math.min(buf.length, V1_PREFIX.length);
  if (buf.subarray(0, n).equals(V1_PREFIX.subarray(0, n))) return parseV1(buf);
  return { kind: 'invalid', reason: 'not a PROXY protocol header' };
}

function parseV1(buf: Buffer): ProxyParse {
  const nl = buf.indexOf(0x0a);
  if (nl < 0) return buf.length >= PROXY_V1_MAX ? { kind: 'invalid', reason: `PROXY v1 line longer than ${PROXY_V1_MAX} octets` } : { kind: 'need-more' };
  if (nl + 1 > PROXY_V1_MAX) return { kind: 'invalid', reason: `PROXY v1 line longer than ${PROXY_V1_MAX} octets` };
  if (buf[nl - 1] !== 0x0d) return { kind: 'invalid', reason: 'PROXY v1 line does not end in CRLF' };
  const raw = buf.subarray(0, nl + 1);
  const line = buf.subarray(0, nl - 1).toString('latin1');
  const f = line.split(' ');
  const header = (addresses: ProxyAddresses | null): ProxyParse => ({ kind: 'header', version: 'v1', length: nl + 1, addresses, raw });
  if (f[1] === 'UNKNOWN') return header(null);
  if (f.length !== 6 || (f[1] !== 'TCP4' && f[1] !== 'TCP6')) return { kind: 'invalid', reason: 'PROXY v1 line is not "PROXY TCP4|TCP6 SRC DST SPORT DPORT"' };
  const fam = f[1] === 'TCP4' ? 4 : 6;
  const [src, dst, sp, dp] = [f[2]!, f[3]!, f[4]!, f[5]!];
  if (net.isIP(src) !== fam || net.isIP(dst) !== fam) return { kind: 'invalid', reason: `PROXY v1 addresses are not IPv${fam}` };
  const port = (s: string) => (/^(0|[1-9]\d{0,4})$/.test(s) && Number(s) <= 65535 ? Number(s) : -1);
  const cp = port(sp);
  const rp = port(dp);
  if (cp < 0 || rp < 0) return { kind: 'invalid', reason: 'PROXY v1 ports are not 0..65535' };
  return header({ clientAddress: src, clientPort: cp, relayAddress: dst, relayPort: rp });
}

function parseV2(buf: Buffer): ProxyParse {
  if (buf.length < 16) return { kind: 'need-more' };
  const ver = buf[12]! >> 4;
  const cmd = buf[12]! & 0x0f;
  if (ver !== 2) return { kind: 'invalid', reason: `PROXY v2 header with version ${ver}` };
  if (cmd > 1) return { kind: 'invalid', reason: `PROXY v2 header with command ${cmd}` };
  const len = buf.readUInt16BE(14);
  if (16 + len > PROXY_V2_MAX) return { kind: 'invalid', reason: `PROXY v2 header longer than ${PROXY_V2_MAX} octets` };
  if (buf.length < 16 + len) return { kind: 'need-more' };
  const raw = buf.subarray(0, 16 + len);
  const header = (addresses: ProxyAddresses | null): ProxyParse => ({ kind: 'header', version: 'v2', length: 16 + len, addresses, raw });
  const fam = buf[13]! >> 4;
  const proto = buf[13]! & 0x0f;
  if (cmd === 0) return header(null); // LOCAL: the addresses, if any, are ignored
  if (fam === 0) return header(null); // AF_UNSPEC
  const asz = fam === 1 ? 4 : fam === 2 ? 16 : 0;
  if (asz === 0) return header(null); // AF_UNIX: no IP address to report
  if (proto !== 1) return { kind: 'invalid', reason: 'PROXY v2 header for a protocol other than TCP' };
  if (len < 2 * asz + 4) return { kind: 'invalid', reason: 'PROXY v2 header shorter than its addresses' };
  const a = buf.subarray(16);
  return header({
    clientAddress: ipString(a.subarray(0, asz)),
    relayAddress: ipString(a.subarray(asz, 2 * asz)),
    clientPort: a.readUInt16BE(2 * asz),
    relayPort: a.readUInt16BE(2 * asz + 2),
  });
}

/** `addr:port` of the client a header names (IPv6 in brackets), for logs; `unknown` without one. */
export function formatProxyClient(a: ProxyAddresses | null): string {
  if (!a) return 'unknown';
  return a.clientAddress.includes(':') ? `[${a.clientAddress}]:${a.clientPort}` : `${a.clientAddress}:${a.clientPort}`;
}
