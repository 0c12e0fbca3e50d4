/**
 * The agent's logger: the project's pino logger (src/observe) under the name taas-agent. The
 * agent never passes cookies, session tokens, Authorization values or the TOTP secret to it;
 * the logger's redaction paths are a second line of defence.
 */
import pino, { type Logger } from 'pino';
import { createLogger } from '../observe/logger.js';

export type { Logger };

export function agentLogger(level = 'info'): Logger {
  return createLogger({ level, name: 'taas-agent' });
}

/** A logger that drops everything, for tests that do not read the log. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
