// taas-server admin page. Plain ES module, no build step, no external assets. Every text from
// the API is set with textContent (never innerHTML), so names and labels cannot inject markup.
// The session lives in HttpOnly cookies; the CSRF token the server returns is kept in memory
// and sent as X-CSRF-Token on every write.
import { rawCall, refresh, failed } from './api.js';
import { h, main, say } from './dom.js';
import { renderEntries, renderEntry, renderNew } from './entries.js';
import { renderKeyLog, renderKeys } from './keys.js';
import { renderLabel } from './label.js';
import { setRouter, state, stopPolling } from './state.js';

// ---- sign-in -------------------------------------------------------------------------------

function signedOut(message) {
  state.me = null;
  state.csrf = null;
  stopPolling();
  document.getElementById('nav').hidden = true;
  document.getElementById('signout').hidden = true;
  document.getElementById('who').textContent = '';
  if (message) say(message, 'error');
  renderSignIn();
}

function renderSignIn() {
  state.view = 'signin';
  const input = h('input', { type: 'password', id: 'key', name: 'key', autocomplete: 'off', required: true, placeholder: 'taas_…', spellcheck: 'false' });
  const form = h('form', { id: 'signin-form', class: 'card', onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const { data } = await rawCall('POST', '/api/auth/session', { key: input.value.trim() });
      state.me = data.key;
      state.csrf = data.csrf;
      state.sessionId = data.sessionId;
      input.value = '';
      say('');
      signedIn();
    } catch (e) {
      failed(e);
      input.focus();
    }
  } },
  h('h1', {}, 'Sign in'),
  h('p', { class: 'muted' }, 'Use an API key. The management key is in admin.key in the data dir.'),
  h('label', { for: 'key' }, 'API key'), input,
  h('p', {}, h('button', { type: 'submit' }, 'Sign in')));
  main.replaceChildren(form);
  input.focus();
}

function signedIn() {
  document.getElementById('nav').hidden = false;
  document.getElementById('signout').hidden = false;
  document.getElementById('who').textContent = `Signed in with ${state.me.name} (${state.me.permissions.join(', ')})`;
  if (!location.hash || location.hash === '#/') location.hash = '#/entries';
  else route();
}

document.getElementById('signout').addEventListener('click', async () => {
  try {
    await rawCall('DELETE', '/api/auth/session');
  } catch {
    // already gone
  }
  say('Signed out.');
  signedOut();
});


// ---- routing -------------------------------------------------------------------------------

function route() {
  if (!state.me) return;
  stopPolling();
  const parts = location.hash.replace(/^#\//, '').split('/').map((x) => {
    try {
      return decodeURIComponent(x);
    } catch {
      return x; // a hand-typed hash with a stray %
    }
  });
  const view = parts[0] || 'entries';
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.view === ({ entry: 'entries', key: 'keys', label: 'entries' }[view] ?? view)) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (view !== 'new' && state.shown) state.shown = null;
  state.view = view;
  const views = { entries: renderEntries, entry: () => renderEntry(parts[1]), label: () => renderLabel(parts[1]), new: renderNew, keys: renderKeys, key: () => renderKeyLog(parts[1]) };
  // Focus moves to the new content (for keyboard and screen-reader users); a view that has a
  // first field to fill takes the focus from there.
  main.focus({ preventScroll: true });
  (views[view] ?? renderEntries)().catch(failed);
}


setRouter(route);
state.signedOut = signedOut;

window.addEventListener('hashchange', () => {
  say('');
  route();
});

// ---- start ---------------------------------------------------------------------------------

async function start() {
  try {
    const { data } = await rawCall('GET', '/api/auth/session');
    state.me = data.key;
    state.csrf = data.csrf;
    state.sessionId = data.sessionId;
  } catch {
    try {
      await refresh();
    } catch {
      return signedOut();
    }
  }
  signedIn();
}

start();
