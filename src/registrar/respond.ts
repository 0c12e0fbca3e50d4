/** Writing registrar answers: status, the documented headers, a JSON error body. */
import type http from 'node:http';
import { TaasError, type ErrorCode } from '../errors.js';
import { errorBody } from '../protocol/error-body.js';
import { formatRetryAfter } from '../protocol/retry-after.js';

export function sendError(res: http.ServerResponse, err: TaasError, extra: Record<string, string> = {}): void {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'cache-control': 'no-store', ...extra };
  if (err.retryAfter !== undefined) headers['retry-after'] = formatRetryAfter(err.retryAfter);
  if (err.status === 401) headers['www-authenticate'] = 'TOTP realm="taas"';
  const body = errorBody(err.code, err.message);
  headers['content-length'] = String(Buffer.byteLength(body));
  res.writeHead(err.status, headers).end(body);
}

export function fail(code: ErrorCode, message?: string, opts: { status?: number; retryAfter?: number } = {}): TaasError {
  return new TaasError(code, message, opts);
}

export function sendText(res: http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(body)), 'cache-control': 'no-store', ...headers }).end(body);
}

export function sendJson(res: http.ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'cache-control': 'no-store' }).end(body);
}

/** 405 with the methods the path does allow. */
export class MethodNotAllowed extends TaasError {
  constructor(readonly allow: string) {
    super('TAAS_METHOD_NOT_ALLOWED', `use ${allow} on this path`);
  }
}
