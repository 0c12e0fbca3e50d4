// The admin API from the page: cookies carry the session, X-CSRF-Token goes with every write,
// a 401 renews the access token once and signs the page out if that fails.
import { say } from './dom.js';
import { state } from './state.js';


export class ApiError extends Error {
  constructor(status, code, msg) {
    super(msg);
    this.status = status;
    this.code = code;
  }
}

export async function rawCall(method, path, body, headers = {}) {
  const opts = { method, credentials: 'same-origin', headers: { ...headers } };
  if (method !== 'GET' && state.csrf) opts.headers['x-csrf-token'] = state.csrf;
  if (body !== undefined) {
    opts.headers['content-type'] ??= 'application/json';
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(res.status, data?.errorCode ?? 'HTTP_' + res.status, data?.errorMsg ?? res.statusText);
  return { data, res };
}

export async function refresh() {
  const { data } = await rawCall('POST', '/api/auth/refresh');
  state.me = data.key;
  state.csrf = data.csrf;
  state.sessionId = data.sessionId;
}

/** Calls the API; on 401 renews the access token once, and signs the page out if that fails. */
export async function api(method, path, body, headers) {
  try {
    return (await rawCall(method, path, body, headers)).data;
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) throw e;
    try {
      await refresh();
    } catch {
      state.signedOut('Your session ended: the key was revoked or expired, or the session was closed. Sign in again.');
      throw e;
    }
    return (await rawCall(method, path, body, headers)).data;
  }
}

export function failed(e) {
  say(e instanceof ApiError ? `${e.message} (${e.code})` : String(e.message ?? e), 'error');
}
