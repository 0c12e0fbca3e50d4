/** Socket address helpers: one normal form, so `::ffff:127.0.0.1` and `127.0.0.1` compare equal. */

/** Lowercased, IPv4-mapped IPv6 unwrapped, zone id kept. */
export function normaliseAddress(addr: string | undefined): string {
  if (!addr) return '';
  const a = addr.toLowerCase();
  const m = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(a);
  return m ? m[1]! : a;
}

export function sameAddress(a: string | undefined, b: string | undefined): boolean {
  return normaliseAddress(a) !== '' && normaliseAddress(a) === normaliseAddress(b);
}

/** `addr:port` (IPv6 in brackets) from a normalised address and a port, for records and logs. */
export function formatPeer(address: string, port: number): string {
  return `${address.includes(':') ? `[${address}]` : address}:${port}`;
}
