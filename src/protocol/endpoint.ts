/** HOST:PORT bodies and Location values. Nothing from a request reaches them unescaped. */

/**
 * A host as it goes before `:PORT` in an endpoint or a URL: an IPv6 literal (any host with a
 * colon: no name has one) in brackets, anything else as it is.
 */
export function bracketHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/** `HOST:PORT`, IPv6 literals in brackets. */
export function formatEndpoint(host: string, port: number): string {
  return `${bracketHost(host)}:${port}`;
}

/** Parses `HOST:PORT` or `[V6]:PORT`; null when it is neither. */
export function parseEndpoint(s: string): { host: string; port: number } | null {
  const m = /^\s*(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]+)):(\d{1,5})\s*$/.exec(s);
  if (!m) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  return { host: (m[1] ?? m[2])!, port };
}

/** The advertised host for a label: `{label}` in the template is replaced by the label. */
export function advertisedHost(template: string, label: string): string {
  return template.replace(/\{label\}/g, label);
}

/** The config keys that decide where clients and hidden servers are sent. */
export interface AdvertiseConfig {
  taasHost: string;
  advertiseHost?: string;
  locationHost?: string;
}

/** Host a hidden server is told in the 200 body: advertiseHost with `{label}` filled in, else taasHost. */
export function labelHost(c: AdvertiseConfig, label: string): string {
  return c.advertiseHost ? advertisedHost(c.advertiseHost, label) : c.taasHost;
}

/**
 * Host in a mobile client's Location from this node: locationHost with `{label}` filled in,
 * else the same as the 200 body. Independent of labelHost, so the client can stay on the
 * label's name (what the hidden server's certificate carries) while hidden servers connect to an address.
 */
export function locationHost(c: AdvertiseConfig, label: string): string {
  return c.locationHost ? advertisedHost(c.locationHost, label) : labelHost(c, label);
}

/** Host of the node itself (its registrar): advertiseHost unless that is per label, else taasHost. */
export function nodeHost(c: AdvertiseConfig): string {
  return c.advertiseHost && !c.advertiseHost.includes('{label}') ? c.advertiseHost : c.taasHost;
}

/**
 * Only characters valid in a URI path and query pass through; anything else (CR, LF, spaces,
 * non-ASCII) is percent-encoded, so a request cannot inject a header or split a response.
 */
export function safePathAndQuery(raw: string): string {
  const p = raw.startsWith('/') ? raw : '/' + raw;
  return p.replace(/[^A-Za-z0-9\-._~!$&'()*+,;=:@/?%]/g, (c) =>
    Array.from(Buffer.from(c, 'utf8')).map((b) => '%' + b.toString(16).toUpperCase().padStart(2, '0')).join(''),
  );
}

export function formatLocation(scheme: 'https' | 'http', host: string, port: number, pathAndQuery: string): string {
  return `${scheme}://${formatEndpoint(host, port)}${safePathAndQuery(pathAndQuery)}`;
}
