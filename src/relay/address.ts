/** Socket address helpers for the relay; the rules themselves live in src/protocol/. */
import { normaliseAddress } from '../protocol/address.js';
import { formatEndpoint } from '../protocol/endpoint.js';

export { normaliseAddress };

export function sameAddress(a: string | undefined, b: string | undefined): boolean {
  return normaliseAddress(a) !== '' && normaliseAddress(a) === normaliseAddress(b);
}

/** `addr:port` (IPv6 in brackets) from a normalised address and a port, for records and logs. */
export const formatPeer = formatEndpoint;
