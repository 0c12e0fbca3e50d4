/** `Authorization: TOTP username="ID", response="TKN"` — the registrar's credential. */
import { TaasError } from '../errors.js';
import { MAX_AUTH_HEADER_LENGTH, MAX_TOKEN_LENGTH } from './limits.js';
import { isValidId } from './names.js';

export interface TotpCredential {
  id: string;
  token: string;
}

const PARAM = /^\s*([A-Za-z]+)\s*=\s*"([^"\\\r\n]*)"\s*$/;

/**
 * Parses the header value. Parameters may come in either order, each exactly once;
 * anything else is TAAS_AUTH_MALFORMED (400). The token must be all digits.
 */
export function parseTotpAuthorization(value: string): TotpCredential {
  const malformed = (why: string) => new TaasError('TAAS_AUTH_MALFORMED', `malformed Authorization header: ${why}`);
  if (value.length > MAX_AUTH_HEADER_LENGTH) throw malformed('too long');
  const m = /^TOTP\s+(.*)$/is.exec(value.trim());
  if (!m) throw malformed('scheme must be TOTP');
  const params = new Map<string, string>();
  for (const part of m[1]!.split(',')) {
    const p = PARAM.exec(part);
    if (!p) throw malformed('expected username="ID", response="TKN"');
    const name = p[1]!.toLowerCase();
    if (params.has(name)) throw malformed(`duplicate parameter ${name}`);
    params.set(name, p[2]!);
  }
  const id = params.get('username');
  const token = params.get('response');
  if (id === undefined || token === undefined || params.size !== 2) throw malformed('expected username="ID", response="TKN"');
  if (!isValidId(id)) throw malformed('username is not a valid ID');
  if (!/^\d+$/.test(token) || token.length < 6 || token.length > MAX_TOKEN_LENGTH) throw malformed('response must be 6-10 digits');
  return { id, token };
}

export function formatTotpAuthorization(cred: TotpCredential): string {
  return `TOTP username="${cred.id}", response="${cred.token}"`;
}
