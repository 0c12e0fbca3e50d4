/**
 * TOTP (RFC 6238) over otplib: SHA1, 6 digits, 30 s period by default (what authenticator
 * apps use). `verifyTotp` accepts ±1 step and reports which step matched, so the caller can
 * refuse a second use of that step (the replay guard lives in src/auth/guard.ts).
 */
import { generateSecret, generateSync, verifySync, generateURI } from 'otplib';

export interface TotpParams {
  algorithm?: 'SHA1' | 'SHA256' | 'SHA512';
  digits?: number;
  period?: number;
}

const algo = (a: TotpParams['algorithm']) => (a ?? 'SHA1').toLowerCase().replace('sha', 'sha') as 'sha1' | 'sha256' | 'sha512';

/** A fresh base32 secret of 20 random bytes (160 bits, RFC 4226's recommendation). */
export function newTotpSecret(): string {
  return generateSecret({ length: 20 });
}

/** The code for `atMs` (default now). */
export function totpCode(secret: string, params: TotpParams = {}, atMs = Date.now()): string {
  return generateSync({
    secret,
    algorithm: algo(params.algorithm),
    digits: (params.digits ?? 6) as 6,
    period: params.period ?? 30,
    epoch: Math.floor(atMs / 1000),
  });
}

/**
 * Returns the matched time step, or null when the code is wrong. Never throws: otplib throws
 * on malformed tokens and short secrets, which are simply wrong codes here.
 */
export function verifyTotp(secret: string, token: string, params: TotpParams = {}, atMs = Date.now()): number | null {
  const period = params.period ?? 30;
  try {
    const r = verifySync({
      secret,
      token,
      algorithm: algo(params.algorithm),
      digits: (params.digits ?? 6) as 6,
      period,
      epoch: Math.floor(atMs / 1000),
      epochTolerance: period,
    });
    return r.valid && 'timeStep' in r ? r.timeStep : null;
  } catch {
    return null;
  }
}

export function otpauthUri(secret: string, id: string, issuer = 'taas-server', params: TotpParams = {}): string {
  return generateURI({
    issuer,
    label: id,
    secret,
    algorithm: algo(params.algorithm),
    digits: (params.digits ?? 6) as 6,
    period: params.period ?? 30,
  });
}
