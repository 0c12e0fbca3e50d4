/**
 * The agent's logger: pino, one JSON line per event on stdout. Cookies, session tokens,
 * Authorization values and the TOTP secret are never passed to it; the redaction paths are a
 * second line of defence should one slip into a logged object.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export const REDACT_PATHS = ['secret', 'cookie', 'token', 'authorization', 'code', '*.secret', '*.cookie', '*.token', '*.authorization', '*.code'];

export function agentLogger(level = 'info', dest: pino.DestinationStream = pino.destination(1)): Logger {
  return pino({ name: 'taas-agent', level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, dest);
}

/** A logger that drops everything, for library use and tests that do not read the log. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
