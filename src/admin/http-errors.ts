/**
 * Every admin error leaves as `{"errorCode", "errorMsg"}` with the code's status: TaasErrors as
 * they are, fastify's own errors mapped to our codes, anything else as TAAS_INTERNAL with a
 * generic message (the details go to the log, never to the client). 5xx faults are logged at
 * error level, expected 5xx refusals (the store's outage) at info, both budgeted
 * (observe/failure-log.ts); client faults at debug.
 */
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { TaasError, type ErrorCode } from '../errors.js';
import { errorBody } from '../protocol/error-body.js';
import { formatRetryAfter } from '../protocol/retry-after.js';
import { FailureLog } from '../observe/failure-log.js';

/** fastify's error codes mapped to ours. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'TAAS_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_BODY_TOO_LARGE: 'TAAS_BAD_REQUEST',
  FST_ERR_CTP_INVALID_JSON_BODY: 'TAAS_BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'TAAS_BAD_REQUEST',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'TAAS_BAD_REQUEST',
  FST_ERR_VALIDATION: 'TAAS_BAD_REQUEST',
  FST_ERR_BAD_URL: 'TAAS_BAD_REQUEST',
  FST_ERR_ASYNC_CONSTRAINT: 'TAAS_BAD_REQUEST',
};

/** For fastify's `frameworkErrors` option: errors raised before routing (a malformed URL) get our body too. */
export function frameworkErrorHandler(err: FastifyError, _req: unknown, reply: FastifyReply): void {
  const e = toTaasError(err);
  void reply.status(e.status).type('application/json; charset=utf-8').send(errorBody(e.code, e.message));
}

export function toTaasError(err: unknown): TaasError {
  if (err instanceof TaasError) return err;
  const fe = err as FastifyError;
  const status = typeof fe?.statusCode === 'number' ? fe.statusCode : 500;
  const mapped = fe?.code ? FASTIFY_CODES[fe.code] : undefined;
  if (mapped) return new TaasError(mapped, fe.message, { status });
  if (status === 429) return new TaasError('TAAS_RATE_LIMITED', 'too many requests; retry later');
  if (status >= 400 && status < 500) return new TaasError('TAAS_BAD_REQUEST', fe.message || 'bad request', { status });
  return new TaasError('TAAS_INTERNAL', 'an unexpected internal error; see the daemon log', { cause: err });
}

export function installErrorHandling(app: FastifyInstance): void {
  const failures = new FailureLog();
  app.setErrorHandler((err, req, reply) => {
    const e = toTaasError(err);
    // A refusal such as the store's outage is no fault: no stack, and within a budget (a page polling through an outage).
    if (e.status >= 500 && FailureLog.expected(e.code)) req.log[failures.level(e.code)]({ errorCode: e.code, errorMsg: e.message }, 'admin request refused (5xx)');
    else if (e.status >= 500) req.log[failures.level(e.code)]({ err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err), code: e.code }, 'admin request failed');
    else req.log.debug({ code: e.code, status: e.status }, 'admin request refused');
    if (e.retryAfter !== undefined) void reply.header('retry-after', formatRetryAfter(e.retryAfter));
    void reply.status(e.status).type('application/json; charset=utf-8').send(errorBody(e.code, e.message));
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).type('application/json; charset=utf-8').send(errorBody('TAAS_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`));
  });
}
