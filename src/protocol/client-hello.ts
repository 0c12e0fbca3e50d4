/**
 * The first octets of a connection to the shared port (`sharedPort: true`), classified: a TLS
 * ClientHello (with its SNI and ALPN), a `TAAS-Cookie` line (a responder), or neither. Only
 * what routing needs is read from the ClientHello: it is forwarded untouched to whoever
 * terminates TLS (the registrar, or a hidden server through SNI passthrough).
 *
 * Bounded and total: every length is checked against what is buffered before it is used, the
 * handshake message may not exceed MAX_CLIENT_HELLO_BYTES, and nothing here throws on any
 * input (test/security/parsers.property.test.ts feeds it 10,000 hostile cases).
 */
import { scanCookieLine } from './cookie.js';
import { COOKIE_PREFIX, MAX_CLIENT_HELLO_BYTES } from './limits.js';

export type HelloScan =
  | { kind: 'need-more' }
  /** The first octet is not a TLS handshake record: something else speaks. */
  | { kind: 'not-tls' }
  /** A TLS record that breaks the grammar, or a ClientHello longer than the bound. */
  | { kind: 'malformed'; reason: string }
  /** `sni`: the host_name, lowercased (null when absent); `alpn`: the offered protocols. */
  | { kind: 'hello'; sni: string | null; alpn: string[]; bytes: number };

/** TLS record: content type handshake (22), legacy version 3.x, length. */
const RECORD_HEADER = 5;
const HANDSHAKE = 0x16;
const CLIENT_HELLO = 0x01;
/** RFC 8446 §5.1: a record carries at most 2^14 octets of plaintext. */
const MAX_RECORD = 16384;
const EXT_SERVER_NAME = 0x0000;
const EXT_ALPN = 0x0010;
/** RFC 6066 §3: the host_name type of a ServerName. */
const HOST_NAME = 0x00;
/** An SNI host name (RFC 6066: no trailing dot, ASCII): the DNS name length bound. */
const MAX_HOST_NAME = 253;
const HOST_NAME_RE = /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*$/;

/**
 * Reads a ClientHello from the start of `buf`, reassembling a handshake message split over
 * several records. `need-more` only while the message could still complete within the bound.
 */
export function scanClientHello(buf: Buffer): HelloScan {
  if (buf.length === 0) return { kind: 'need-more' };
  if (buf[0] !== HANDSHAKE) return { kind: 'not-tls' };
  const parts: Buffer[] = [];
  let have = 0;
  let off = 0;
  let want = -1; // handshake message length (header included) once known
  while (want < 0 || have < want) {
    if (buf.length - off < RECORD_HEADER) return { kind: 'need-more' };
    if (buf[off] !== HANDSHAKE) return { kind: 'malformed', reason: 'a record other than handshake inside the ClientHello' };
    if (buf[off + 1] !== 0x03) return { kind: 'malformed', reason: 'not a TLS record version' };
    const len = buf.readUInt16BE(off + 3);
    if (len === 0 || len > MAX_RECORD) return { kind: 'malformed', reason: `record length ${len}` };
    const take = Math.min(len, buf.length - off - RECORD_HEADER);
    parts.push(buf.subarray(off + RECORD_HEADER, off + RECORD_HEADER + take));
    have += take;
    if (want < 0 && have >= 4) {
      const head = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      if (head[0] !== CLIENT_HELLO) return { kind: 'malformed', reason: 'first handshake message is not a ClientHello' };
      const msgLen = (head[1]! << 16) | (head[2]! << 8) | head[3]!;
      if (msgLen + 4 > MAX_CLIENT_HELLO_BYTES) return { kind: 'malformed', reason: `ClientHello of ${msgLen} octets exceeds ${MAX_CLIENT_HELLO_BYTES}` };
      want = msgLen + 4;
    }
    if (take < len) {
      // This record is not all here yet: more octets may still complete the message.
      return want >= 0 && have >= want ? finish(parts, want, off + RECORD_HEADER + take) : { kind: 'need-more' };
    }
    off += RECORD_HEADER + len;
  }
  return finish(parts, want, off);
}

function finish(parts: Buffer[], want: number, bytes: number): HelloScan {
  const msg = (parts.length === 1 ? parts[0]! : Buffer.concat(parts)).subarray(0, want);
  const r = parseHelloBody(msg.subarray(4));
  return typeof r === 'string' ? { kind: 'malformed', reason: r } : { kind: 'hello', ...r, bytes };
}

/** A cursor over a ClientHello body; each read says whether it fitted. */
class Reader {
  off = 0;
  constructor(readonly b: Buffer) {}
  get left(): number {
    return this.b.length - this.off;
  }
  u8(): number | null {
    return this.left >= 1 ? this.b[this.off++]! : null;
  }
  u16(): number | null {
    if (this.left < 2) return null;
    const v = this.b.readUInt16BE(this.off);
    this.off += 2;
    return v;
  }
  bytes(n: number): Buffer | null {
    if (this.left < n) return null;
    const v = this.b.subarray(this.off, this.off + n);
    this.off += n;
    return v;
  }
  /** A vector with a 1- or 2-octet length prefix. */
  vec(prefix: 1 | 2): Buffer | null {
    const n = prefix === 1 ? this.u8() : this.u16();
    return n === null ? null : this.bytes(n);
  }
}

/** RFC 8446 §4.1.2 ClientHello; returns the reason as a string when it breaks the grammar. */
function parseHelloBody(body: Buffer): { sni: string | null; alpn: string[] } | string {
  const r = new Reader(body);
  if (r.bytes(2 + 32) === null) return 'truncated ClientHello (version, random)';
  const sid = r.vec(1);
  if (sid === null || sid.length > 32) return 'bad legacy_session_id';
  const suites = r.vec(2);
  if (suites === null || suites.length < 2 || suites.length % 2 !== 0) return 'bad cipher_suites';
  const comp = r.vec(1);
  if (comp === null || comp.length < 1) return 'bad legacy_compression_methods';
  let sni: string | null = null;
  let alpn: string[] = [];
  if (r.left === 0) return { sni, alpn }; // TLS 1.2 and earlier: extensions may be absent
  const exts = r.vec(2);
  if (exts === null || r.left !== 0) return 'bad extensions length';
  const e = new Reader(exts);
  const seen = new Set<number>();
  while (e.left > 0) {
    const type = e.u16();
    const data = e.vec(2);
    if (type === null || data === null) return 'truncated extension';
    // RFC 8446 §4.2: one extension of a type at most. Two SNIs would let the relay and the
    // hidden server disagree on the name.
    if (seen.has(type)) return `extension ${type} appears twice`;
    seen.add(type);
    if (type === EXT_SERVER_NAME) {
      const s = parseServerName(data);
      if (typeof s !== 'object') return s;
      sni = s.name;
    } else if (type === EXT_ALPN) {
      const a = parseAlpn(data);
      if (typeof a === 'string') return a;
      alpn = a;
    }
  }
  return { sni, alpn };
}

function parseServerName(data: Buffer): { name: string | null } | string {
  const r = new Reader(data);
  const list = r.vec(2);
  if (list === null || r.left !== 0 || list.length === 0) return 'bad server_name list';
  const l = new Reader(list);
  let name: string | null = null;
  while (l.left > 0) {
    const type = l.u8();
    const v = l.vec(2);
    if (type === null || v === null) return 'truncated server_name';
    if (type !== HOST_NAME) continue;
    if (name !== null) return 'two host_names in server_name';
    if (v.length === 0 || v.length > MAX_HOST_NAME) return 'bad host_name length';
    const s = v.toString('latin1').toLowerCase();
    if (!HOST_NAME_RE.test(s)) return 'host_name is not a DNS name';
    name = s;
  }
  return { name };
}

function parseAlpn(data: Buffer): string[] | string {
  const r = new Reader(data);
  const list = r.vec(2);
  if (list === null || r.left !== 0 || list.length === 0) return 'bad ALPN list';
  const l = new Reader(list);
  const out: string[] = [];
  while (l.left > 0) {
    const p = l.vec(1);
    if (p === null || p.length === 0) return 'bad ALPN protocol name';
    out.push(p.toString('latin1'));
  }
  return out;
}

export type FirstOctets =
  | { kind: 'need-more' }
  | { kind: 'hello'; sni: string | null; alpn: string[] }
  /** A responder's cookie line; `rest` is what followed it (the hidden server's stream). */
  | { kind: 'cookie'; token: string; rest: Buffer }
  /** Neither a ClientHello nor a cookie line (or a broken one): `reason` for the log. */
  | { kind: 'other'; reason: string }
  /** Octets that start like plain HTTP: the registrar's when it serves plain HTTP. */
  | { kind: 'http' };

/** Plain HTTP methods the registrar answers; a plain-HTTP registrar takes these. */
const HTTP_START = /^(?:GET|PUT|HEAD|POST|OPTIONS|DELETE|PATCH) /;

/** What the first octets of a shared-port connection are: the classifier's one decision. */
export function classifyFirstOctets(buf: Buffer): FirstOctets {
  if (buf.length === 0) return { kind: 'need-more' };
  if (buf[0] === HANDSHAKE) {
    const h = scanClientHello(buf);
    if (h.kind === 'hello') return { kind: 'hello', sni: h.sni, alpn: h.alpn };
    if (h.kind === 'need-more') return h;
    return { kind: 'other', reason: h.kind === 'malformed' ? h.reason : 'not TLS' };
  }
  const prefix = COOKIE_PREFIX.slice(0, Math.min(buf.length, COOKIE_PREFIX.length));
  if (buf.subarray(0, prefix.length).toString('latin1') === prefix) {
    const c = scanCookieLine(buf);
    if (c.kind === 'cookie') return c;
    if (c.kind === 'need-more') return c;
    return { kind: 'other', reason: 'malformed cookie line' };
  }
  const start = buf.subarray(0, 8).toString('latin1');
  if (HTTP_START.test(start)) return { kind: 'http' };
  if (buf.length < 8 && /^[A-Z]+$/.test(start)) return { kind: 'need-more' };
  return { kind: 'other', reason: 'neither a TLS ClientHello nor a TAAS-Cookie line' };
}
