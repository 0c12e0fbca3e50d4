/**
 * The operator's event lines that no other module writes: pairing start and end (bytes,
 * duration, reason) and refused registrations. Registrations accepted, clients and responders
 * refused, and limits hit are logged where they happen (registrar, relay). Every line carries
 * the `cid` of the request, connection or pairing it belongs to (correlation.ts).
 */
import type { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { PairingRecord } from '../store/types.js';
import { LogBudget } from './log-budget.js';

/** Refused registrations logged at info per result (bad-code, rate-limited, ...) and minute. */
const REFUSALS_LOGGED_PER_MINUTE = 10;

export function attachEventLog(relay: EventEmitter, routes: EventEmitter, logger: Logger): () => void {
  const refusals = new LogBudget(REFUSALS_LOGGED_PER_MINUTE, 60_000);
  const listeners: [EventEmitter, string, Parameters<EventEmitter['on']>[1]][] = [
    [relay, 'paired', (e: { label: string; waitMs: number }) => logger.info({ label: e.label, waitMs: e.waitMs }, 'pairing started')],
    [relay, 'pairing-end', (r: PairingRecord) => {
      const durationMs = Date.parse(r.end) - Date.parse(r.start);
      logger.info({ label: r.label, client: r.client, responder: r.responder, bytesUp: r.bytesUp, bytesDown: r.bytesDown, durationMs, reason: r.reason }, 'pairing ended');
    }],
    [relay, 'pool-empty', (e: { label: string }) => logger.debug({ label: e.label }, 'mobile client arrived with no responder idle')],
    [routes, 'registration', (e: { result: string; code?: string }) => {
      // A limit hit (TAAS_LIMIT_REACHED, TAAS_NO_PORT) comes with its code (not `code`: redacted as a TOTP code).
      // A stranger's spray is hundreds of refusals a second: the first few per result and
      // minute at info, the rest at debug (metrics count them all).
      if (e.result === 'ok') return;
      const level = refusals.allow(e.result) ? 'info' : 'debug';
      logger[level]({ result: e.result, ...(e.code ? { errorCode: e.code } : {}) }, 'registration refused');
    }],
  ];
  for (const [em, ev, fn] of listeners) em.on(ev, fn);
  return () => {
    for (const [em, ev, fn] of listeners) em.off(ev, fn);
  };
}
