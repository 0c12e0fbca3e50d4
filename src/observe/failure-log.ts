/**
 * At which level a 5xx answer is logged, for the registrar and the admin API alike. An
 * expected refusal (no responder, the store away, draining, full) is the relay working as
 * documented, and anyone can cause one per request: info. A fault of ours: error. Either way
 * within a budget per error code and minute (metrics count every one); past it, debug. Without
 * this a store outage or a client polling a label with no responder wrote a line per request.
 */
import type { ErrorCode } from '../errors.js';
import { LogBudget } from './log-budget.js';

/** 5xx answers that are the relay working as documented, not a fault. */
const EXPECTED_5XX: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['TAAS_NO_RESPONDER', 'TAAS_STORE_UNAVAILABLE', 'TAAS_DRAINING', 'TAAS_NO_PORT', 'TAAS_LIMIT_REACHED']);
/** Lines per error code and minute: enough to see a problem start, few enough for any flood. */
const LINES_PER_MINUTE = 10;

export class FailureLog {
  private readonly budget = new LogBudget(LINES_PER_MINUTE, 60_000);

  /** True when the code is an expected refusal rather than a fault. */
  static expected(code: ErrorCode): boolean {
    return EXPECTED_5XX.has(code);
  }

  /** The level for one more 5xx with this code (uses budget). */
  level(code: ErrorCode): 'info' | 'error' | 'debug' {
    if (!this.budget.allow(code)) return 'debug';
    return FailureLog.expected(code) ? 'info' : 'error';
  }
}
