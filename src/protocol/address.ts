/**
 * Socket addresses: one normal form (so `::ffff:127.0.0.1` and `127.0.0.1` compare equal) and
 * the bucket every per-address limit counts by.
 */

/** An IPv4-mapped IPv6 address, `::ffff:a.b.c.d` (lowercased), with its IPv4 part captured. */
const IPV4_MAPPED = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/;

/** Lowercased, IPv4-mapped IPv6 unwrapped, zone id kept; '' when there is no address. */
export function normaliseAddress(addr: string | undefined): string {
  if (!addr) return '';
  const a = addr.toLowerCase();
  const m = IPV4_MAPPED.exec(a);
  return m ? m[1]! : a;
}

/**
 * What per-address limits count (failures per address, connections per address): an IPv4
 * address, or the /64 prefix of an IPv6 one (one host commonly holds a whole /64, so counting
 * single IPv6 addresses would give it 2^64 budgets). IPv4-mapped IPv6 counts as the IPv4
 * address; the zone id is dropped. Total: any string gives a string, never a throw.
 */
export function addressBucket(address: string | undefined): string {
  const a = normaliseAddress((address ?? '').replace(/%.*$/, ''));
  if (!a.includes(':')) return a;
  const [head, tail = ''] = a.split('::') as [string, string?];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  // An embedded IPv4 tail takes two groups; it lies in the host half, which is dropped anyway.
  const groups = a.includes('::') ? [...h, ...Array(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t] : h;
  return groups.slice(0, 4).map((g) => (parseInt(g, 16) || 0).toString(16)).join(':') + '::/64';
}
