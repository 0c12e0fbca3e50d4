/** The services every admin route shares, built once by startAdmin. */
import type { AccessLog } from './access-log.js';
import type { AdminDeps } from './deps.js';
import type { ApiKeyRecord, ApiKeys, Permission } from './keys.js';
import type { TokenService } from './tokens.js';

export interface AdminContext {
  deps: AdminDeps;
  keys: ApiKeys;
  tokens: TokenService;
  accessLog: AccessLog;
  /** True when the admin server speaks TLS (cookies get Secure). */
  tls: boolean;
}

/** Who made a request: the key, and how it was presented. */
export interface Principal {
  key: ApiKeyRecord;
  via: 'api-key' | 'bearer-token' | 'cookie';
  /** Session (refresh token id) when authenticated by an access token. */
  sessionId?: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
  interface FastifyContextConfig {
    /** Permission a route needs; routes without one are public (health, page assets, sign-in). */
    perm?: Permission | 'any';
  }
}

export const ACCESS_COOKIE = 'taas_at';
export const REFRESH_COOKIE = 'taas_rt';
export const CSRF_HEADER = 'x-csrf-token';
