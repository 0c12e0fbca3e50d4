/** ClientHellos built octet by octet (RFC 8446 §4.1.2), for tests that play a TLS client's first flight. */
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

