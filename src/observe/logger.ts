/**
 * The logger: pino JSON to stdout, human-readable when stdout is a terminal. Secrets never
 * reach a log: TOTP secrets, codes, cookies, session tokens and API keys are redacted by path,
 * and code that logs requests logs only fields it chose. Lines carry `cid`, the correlation id
 * of the request, client connection or pairing they belong to (correlation.ts).
 */
import pino, { type Logger } from 'pino';
import { correlationMixin } from './correlation.js';

export const REDACT_PATHS = [
  'secret', '*.secret', 'token', '*.token', 'cookie', '*.cookie', 'code', '*.code_value',
  'authorization', '*.authorization', 'headers.authorization', 'req.headers.authorization',
  'headers["taas-cookie"]', 'headers["taas-session"]', 'apiKey', '*.apiKey', 'key', '*.key', 'password', '*.password',
];

export function createLogger(opts: { level?: string; name?: string; pretty?: boolean; destination?: pino.DestinationStream } = {}): Logger {
  const pretty = opts.pretty ?? (process.stdout.isTTY === true && !opts.destination);
  const base = {
    level: opts.level ?? 'info',
    name: opts.name ?? 'taas-server',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Every line written while a request, client connection or pairing is handled names it.
    mixin: correlationMixin,
  };
  if (pretty) return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,name' } } });
  return opts.destination ? pino(base, opts.destination) : pino(base, pino.destination({ fd: 1, sync: false }));
}

export type { Logger };
