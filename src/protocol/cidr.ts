/**
 * CIDR blocks of mobile-client addresses (a label's allow and deny lists): parsed strictly,
 * written back in one canonical form, matched through node:net's BlockList. IPv4-mapped IPv6
 * addresses are matched as the IPv4 address they carry (normaliseAddress), so `10.0.0.0/8`
 * also covers `::ffff:10.1.2.3` from a dual-stack listener.
 */
import net from 'node:net';
import { normaliseAddress } from './address.js';

export interface Cidr {
  /** The network address, canonical (host bits cleared). */
  readonly network: string;
  readonly prefix: number;
  readonly family: 'ipv4' | 'ipv6';
}

/** `a.b.c.d/n` or `x::y/n`; a bare address is a single host (/32 or /128). Null when malformed. */
export function parseCidr(text: string): Cidr | null {
  if (typeof text !== 'string') return null;
  const m = /^([^/\s]+)(?:\/(\d{1,3}))?$/.exec(text.trim());
  if (!m) return null;
  const addr = normaliseAddress(m[1]);
  const v = net.isIP(addr);
  if (v === 0 || addr.includes('%')) return null;
  const max = v === 4 ? 32 : 128;
  const prefix = m[2] === undefined ? max : Number(m[2]);
  if (prefix > max || (m[2] !== undefined && m[2].length > 1 && m[2].startsWith('0'))) return null;
  const family = v === 4 ? 'ipv4' : 'ipv6';
  return { network: maskAddress(addr, family, prefix), prefix, family };
}

export function formatCidr(c: Cidr): string {
  return `${c.network}/${c.prefix}`;
}

/** Clears the host bits of `addr` and writes it in its shortest form. */
function maskAddress(addr: string, family: 'ipv4' | 'ipv6', prefix: number): string {
  const sock = new net.SocketAddress({ address: addr, family });
  const bytes = family === 'ipv4' ? Buffer.from(addr.split('.').map(Number)) : ipv6Bytes(sock.address);
  for (let bit = prefix; bit < bytes.length * 8; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  if (family === 'ipv4') return [...bytes].join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  // The shortest form (RFC 5952) through the platform's own formatter.
  return new net.SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address;
}

function ipv6Bytes(addr: string): Buffer {
  const [head, tail = ''] = addr.split('::') as [string, string?];
  const h = head ? head.split(':') : [];
  let t = tail ? tail.split(':') : [];
  // An embedded IPv4 tail (::ffff:1.2.3.4 not unwrapped, or ::1.2.3.4) takes two groups.
  const last = (addr.includes('::') ? t : h).at(-1) ?? '';
  const four: string[] = [];
  if (last.includes('.')) {
    const o = last.split('.').map(Number);
    four.push(((o[0]! << 8) | o[1]!).toString(16), ((o[2]! << 8) | o[3]!).toString(16));
    if (addr.includes('::')) t = [...t.slice(0, -1), ...four];
    else h.splice(h.length - 1, 1, ...four);
  }
  const groups = addr.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16) || 0, i * 2));
  return out;
}

/** A dotted IPv4 address as an unsigned 32-bit number. */
function ipv4Number(a: string): number {
  const o = a.split('.');
  return ((Number(o[0]) << 24) | (Number(o[1]) << 16) | (Number(o[2]) << 8) | Number(o[3])) >>> 0;
}

/**
 * A set of CIDR blocks to test addresses against: IPv4 blocks as number and mask pairs (checked
 * on every connection of a label with a list: a BlockList check costs ~1 µs, this ~0.05 µs),
 * IPv6 blocks in node:net's BlockList.
 */
export class CidrSet {
  private readonly v6 = new net.BlockList();
  private readonly v4: Uint32Array;
  private readonly hasV6: boolean;
  readonly size: number;

  constructor(cidrs: readonly Cidr[]) {
    const v4 = cidrs.filter((c) => c.family === 'ipv4');
    this.v4 = new Uint32Array(v4.length * 2);
    v4.forEach((c, i) => {
      const mask = c.prefix === 0 ? 0 : (0xffffffff << (32 - c.prefix)) >>> 0;
      this.v4[2 * i] = (ipv4Number(c.network) & mask) >>> 0;
      this.v4[2 * i + 1] = mask;
    });
    for (const c of cidrs) if (c.family === 'ipv6') this.v6.addSubnet(c.network, c.prefix, 'ipv6');
    this.hasV6 = cidrs.length > v4.length;
    this.size = cidrs.length;
  }

  /** Whether the (socket) address lies in one of the blocks; false for no or a malformed address. */
  has(address: string | undefined): boolean {
    const a = normaliseAddress(address?.includes('%') ? address.replace(/%.*$/, '') : address);
    const v = net.isIP(a);
    if (v === 4) {
      const n = ipv4Number(a);
      for (let i = 0; i < this.v4.length; i += 2) if (((n & this.v4[i + 1]!) >>> 0) === this.v4[i]) return true;
      return false;
    }
    return v === 6 && this.hasV6 && this.v6.check(a, 'ipv6');
  }
}
