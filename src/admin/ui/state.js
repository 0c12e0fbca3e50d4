// Page state shared by the modules, and the refresh loop.
import { ApiError, failed } from './api.js';

// Refresh period: 3 s, or ?poll=MS (250..60000) for tests and for operators who want it calmer.
export const POLL_MS = (() => {
  const n = Number(new URLSearchParams(location.search).get('poll'));
  return Number.isInteger(n) && n >= 250 && n <= 60000 ? n : 3000;
})();
// `gen` counts renders of the main area: a poll that started before another render (a secret
// panel, another view) must not replace what is shown now. `signedOut` is set by app.js.
export const state = { me: null, csrf: null, sessionId: null, view: null, timer: null, shown: null, gen: 0, signedOut: () => {} };

/** Set by app.js: renders the view the location hash names. */
let router = () => {};
export function setRouter(fn) {
  router = fn;
}

export function stopPolling() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
}

/** Runs `fn` every POLL_MS while signed in; a 401 is handled by api() (it signs the page out). */
export function poll(fn) {
  stopPolling();
  state.timer = setInterval(() => {
    if (!state.me) return stopPolling();
    fn().catch((e) => {
      if (!(e instanceof ApiError && e.status === 401)) failed(e);
    });
  }, POLL_MS);
}

/** Navigates, re-rendering when the hash is already the target (no hashchange then). */
export function go(hash) {
  if (location.hash === hash) router();
  else location.hash = hash;
}
