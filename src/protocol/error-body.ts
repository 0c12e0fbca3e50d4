/** `{"errorCode": "...", "errorMsg": "..."}`: the error body of every JSON API. */
import type { ErrorCode } from '../errors.js';

export interface ErrorBody {
  errorCode: ErrorCode | string;
  errorMsg: string;
}

export function errorBody(code: ErrorCode | string, msg: string): string {
  return JSON.stringify({ errorCode: code, errorMsg: msg } satisfies ErrorBody);
}
