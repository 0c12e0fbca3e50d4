// taas-server admin page. Plain ES module, no build step, no external assets. Every text from
// the API is set with textContent (never innerHTML), so names and labels cannot inject markup.
// The session lives in HttpOnly cookies; the CSRF token the server returns is kept in memory
// and sent as X-CSRF-Token on every write.

// Refresh period: 3 s, or ?poll=MS (250..60000) for tests and for operators who want it calmer.
const POLL_MS = (() => {
  const n = Number(new URLSearchParams(location.search).get('poll'));
  return Number.isInteger(n) && n >= 250 && n <= 60000 ? n : 3000;
})();
// `gen` counts renders of the main area: a poll that started before another render (a secret
// panel, another view) must not replace what is shown now.
const state = { me: null, csrf: null, sessionId: null, view: null, timer: null, shown: null, gen: 0 };
const main = document.getElementById('main');
const notice = document.getElementById('notice');

// ---- small DOM helpers ------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

function say(text, kind = 'info') {
  notice.className = kind === 'error' ? 'error' : '';
  notice.textContent = text;
}

function ago(iso) {
  if (!iso) return 'never';
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(iso).toLocaleString();
}

function time(iso) {
  return iso ? h('time', { datetime: iso, title: new Date(iso).toLocaleString() }, ago(iso)) : h('span', { class: 'muted' }, 'never');
}

function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1048576) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1048576).toFixed(1)} MiB`;
}

function cell(label, ...children) {
  return h('td', { 'data-label': label }, ...children);
}

function table(headers, rows, caption) {
  return h('table', { class: 'stack' }, caption ? h('caption', { class: 'muted' }, caption) : null, h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))), h('tbody', {}, rows));
}

function confirmDialog(title, text, okText) {
  const dlg = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = okText;
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
    dlg.returnValue = 'cancel';
    dlg.showModal();
  });
}

// ---- the API ------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, msg) {
    super(msg);
    this.status = status;
    this.code = code;
  }
}

async function rawCall(method, path, body, headers = {}) {
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

async function refresh() {
  const { data } = await rawCall('POST', '/api/auth/refresh');
  state.me = data.key;
  state.csrf = data.csrf;
  state.sessionId = data.sessionId;
}

/** Calls the API; on 401 renews the access token once, and signs the page out if that fails. */
async function api(method, path, body, headers) {
  try {
    return (await rawCall(method, path, body, headers)).data;
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) throw e;
    try {
      await refresh();
    } catch {
      signedOut('Your session ended: the key was revoked or expired, or the session was closed. Sign in again.');
      throw e;
    }
    return (await rawCall(method, path, body, headers)).data;
  }
}

function failed(e) {
  say(e instanceof ApiError ? `${e.message} (${e.code})` : String(e.message ?? e), 'error');
}

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

// ---- routing and polling -------------------------------------------------------------------

function stopPolling() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
}

function poll(fn) {
  stopPolling();
  state.timer = setInterval(() => {
    if (!state.me) return stopPolling();
    fn().catch((e) => {
      if (!(e instanceof ApiError && e.status === 401)) failed(e);
    });
  }, POLL_MS);
}

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
    if (a.dataset.view === ({ entry: 'entries', key: 'keys' }[view] ?? view)) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (view !== 'new' && state.shown) state.shown = null;
  state.view = view;
  const views = { entries: renderEntries, entry: () => renderEntry(parts[1]), new: renderNew, keys: renderKeys, key: () => renderKeyLog(parts[1]) };
  // Focus moves to the new content (for keyboard and screen-reader users); a view that has a
  // first field to fill takes the focus from there.
  main.focus({ preventScroll: true });
  (views[view] ?? renderEntries)().catch(failed);
}

/** Navigates, re-rendering when the hash is already the target (no hashchange then). */
function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

window.addEventListener('hashchange', () => {
  say('');
  route();
});

// ---- entries -------------------------------------------------------------------------------

function labelBadges(row) {
  return row.labelStates.map((s) => {
    const live = s.idle > 0;
    const text = live ? `${s.label}: live, ${s.idle} idle` : `${s.label}: ${s.pending > 0 ? 'registering' : 'offline'}`;
    const extra = [s.active ? `${s.active} paired` : null, s.waiting ? `${s.waiting} waiting` : null].filter(Boolean).join(', ');
    return h('span', { class: `badge ${live ? 'live' : s.pending ? 'warn' : 'idle'}`, 'data-label-state': s.label, 'data-live': live ? 'yes' : 'no' }, live ? '● ' : '○ ', text, extra ? ` (${extra})` : '');
  });
}

async function renderEntries() {
  const body = h('tbody');
  const summary = h('p', { class: 'muted', 'aria-live': 'polite' });
  main.replaceChildren(
    h('div', { class: 'row' }, h('h1', {}, 'Entries'), h('a', { class: 'button', href: '#/new', style: null }, 'New entry')),
    summary,
    h('table', { class: 'stack', id: 'entries' }, h('thead', {}, h('tr', {}, ['ID', 'Labels and live status', 'Last registration', 'Last pairing', ''].map((x) => h('th', { scope: 'col' }, x)))), body),
  );
  const load = async () => {
    const rows = await api('GET', '/api/status');
    summary.textContent = `${rows.length} ${rows.length === 1 ? 'entry' : 'entries'}; ${rows.filter((r) => r.labelStates.some((s) => s.idle > 0)).length} live. Updates every ${POLL_MS / 1000} s.`;
    body.replaceChildren(...rows.map((r) => {
      const lastPairing = r.labelStates.map((s) => s.lastPairing).filter(Boolean).sort().pop() ?? null;
      return h('tr', { 'data-entry': r.id },
        cell('ID', h('a', { href: `#/entry/${encodeURIComponent(r.id)}` }, h('span', { class: 'mono' }, r.id))),
        cell('Labels', h('div', {}, labelBadges(r))),
        cell('Registered', time(r.lastRegistration)),
        cell('Paired', time(lastPairing)),
        cell('', h('a', { href: `#/entry/${encodeURIComponent(r.id)}` }, 'Manage')));
    }));
    if (rows.length === 0) body.replaceChildren(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No entries yet. Create one for each hidden server.')));
  };
  await load();
  poll(load);
}

function secretPanel(issued, title) {
  state.gen++; // nothing started earlier may replace the panel: the secret is shown this once
  const file = JSON.stringify(issued.agentFile, null, 2) + '\n';
  const name = `taas-agent-${issued.entry.id.replace(/[^A-Za-z0-9._-]/g, '_')}.json`;
  const url = URL.createObjectURL(new Blob([file], { type: 'application/json' }));
  return h('section', { class: 'card secret-box', id: 'issued', 'aria-labelledby': 'issued-title' },
    h('h2', { id: 'issued-title' }, title),
    h('p', {}, h('strong', {}, 'Shown once. '), 'Save the agent file now, or scan the code into an authenticator app; the secret is not shown again (rotate it to get a new one).'),
    h('div', { class: 'grid2' },
      h('div', {},
        h('p', {}, 'ID: ', h('span', { class: 'mono', id: 'issued-id' }, issued.entry.id)),
        h('p', {}, 'Labels: ', issued.entry.labels.join(', ')),
        h('p', {}, 'Secret (base32): ', h('code', { id: 'issued-secret' }, issued.secret)),
        h('p', {}, 'URI: ', h('code', { id: 'issued-uri' }, issued.otpauthUri)),
        h('p', {}, h('a', { class: 'button', id: 'download-agent', href: url, download: name }, `Download agent file (${name})`)),
        h('p', { class: 'muted' }, 'Run on the hidden server: ', h('code', {}, `taas-agent --config ${name} --target 127.0.0.1:PORT`))),
      h('img', { class: 'qr', src: issued.qr, alt: `QR code of the otpauth URI for ${issued.entry.id}`, width: 220, height: 220 })),
    h('p', {}, h('button', { type: 'button', class: 'secondary', onclick: () => {
      URL.revokeObjectURL(url);
      state.shown = null;
      go(`#/entry/${encodeURIComponent(issued.entry.id)}`);
    } }, 'I saved it — done')));
}

async function renderNew() {
  if (state.shown) {
    main.replaceChildren(secretPanel(state.shown, 'Entry created'));
    document.getElementById('download-agent').focus();
    return;
  }
  const labels = h('input', { type: 'text', id: 'new-labels', required: true, placeholder: 'kitchen, garage', autocapitalize: 'none', spellcheck: 'false', 'aria-describedby': 'new-labels-help' });
  const id = h('input', { type: 'text', id: 'new-id', placeholder: '(a new UUID)', autocapitalize: 'none', spellcheck: 'false' });
  const form = h('form', { class: 'card', id: 'new-form', onsubmit: async (ev) => {
    ev.preventDefault();
    const list = labels.value.split(/[\s,]+/).filter(Boolean);
    try {
      const issued = id.value.trim()
        ? await api('PUT', `/api/entries/${encodeURIComponent(id.value.trim())}`, { labels: list }, { 'if-none-match': '*' })
        : await api('POST', '/api/entries', { labels: list });
      state.shown = issued;
      say(`Entry ${issued.entry.id} created.`);
      renderNew();
    } catch (e) {
      failed(e);
    }
  } },
  h('h1', {}, 'New entry'),
  h('p', { class: 'muted' }, 'An entry is one hidden server: an ID, a TOTP secret and the labels it may register.'),
  h('label', { for: 'new-labels' }, 'Labels'), labels,
  h('p', { id: 'new-labels-help', class: 'muted' }, 'DNS labels, separated by commas or spaces. Clients reach a label at https://LABEL.<namedServers>/.'),
  h('label', { for: 'new-id' }, 'ID (optional)'), id,
  h('p', {}, h('button', { type: 'submit' }, 'Create entry')));
  main.replaceChildren(form);
  labels.focus();
}

async function renderEntry(id) {
  const gen = ++state.gen;
  const entry = await api('GET', `/api/entries/${encodeURIComponent(id)}`);
  // History boxes, refreshed with the live status.
  const dailyBox = h('div');
  const attemptsBox = h('div');
  const loadHistory = async () => {
    const [attempts, counts] = await Promise.all([api('GET', `/api/entries/${encodeURIComponent(entry.id)}/attempts?limit=20`), api('GET', '/api/counts')]);
    const daily = counts.filter((c) => entry.labels.includes(c.label)).sort((a, b) => b.day.localeCompare(a.day) || a.label.localeCompare(b.label)).slice(0, 30);
    dailyBox.replaceChildren(daily.length === 0 ? h('p', { class: 'muted' }, 'No pairings counted yet.') : table(['Day', 'Label', 'Pairings', 'Bytes'], daily.map((c) => h('tr', {},
      cell('Day', c.day), cell('Label', c.label), cell('Pairings', String(c.pairings)), cell('Bytes', bytes(c.bytes))))));
    attemptsBox.replaceChildren(attempts.length === 0 ? h('p', { class: 'muted' }, 'No registration attempts yet.') : table(['When', 'From', 'Label', 'Result'], attempts.map((a) => h('tr', {},
      cell('When', time(a.at)), cell('From', h('span', { class: 'mono' }, a.from)), cell('Label', a.label), cell('Result', h('span', { class: a.result === 'ok' ? 'live' : 'bad' }, a.result))))));
  };
  const canWrite = state.me.permissions.includes('write');
  const statusBox = h('div', {}, 'Loading live status…');
  const pairingsBox = h('div');
  const labelSelect = h('select', { id: 'pairings-label', onchange: () => loadPairings().catch(failed) }, entry.labels.map((l) => h('option', { value: l }, l)));
  const loadPairings = async () => {
    const label = labelSelect.value;
    if (!label) return pairingsBox.replaceChildren();
    const rows = await api('GET', `/api/labels/${encodeURIComponent(label)}/pairings?limit=20`);
    pairingsBox.replaceChildren(rows.length === 0 ? h('p', { class: 'muted' }, `No pairings of ${label} yet.`) : table(['Ended', 'Client', 'Hidden server', 'Path', 'Bytes up / down', 'Why'], rows.map((p) => h('tr', {},
      cell('Ended', time(p.end)), cell('Client', h('span', { class: 'mono' }, p.client)), cell('Hidden server', h('span', { class: 'mono' }, p.responder)),
      cell('Path', h('span', { class: 'mono' }, p.path ?? '')), cell('Bytes', `${bytes(p.bytesUp)} / ${bytes(p.bytesDown)}`), cell('Why', p.reason)))));
  };
  const loadStatus = async () => {
    const rows = await api('GET', '/api/status');
    const row = rows.find((r) => r.id === entry.id);
    statusBox.replaceChildren(row ? h('div', {}, labelBadges(row), h('p', { class: 'muted' }, 'Last registration: ', time(row.lastRegistration))) : h('p', { class: 'bad' }, 'This entry no longer exists.'));
    // Changed elsewhere (CLI, another operator): show the new version unless the operator is typing.
    const typing = document.activeElement === labelInput && labelInput.value !== '';
    if (row && row.version !== entry.version && !typing && gen === state.gen && location.hash === `#/entry/${encodeURIComponent(entry.id)}`) {
      stopPolling();
      await renderEntry(entry.id);
    }
  };

  const labelInput = h('input', { type: 'text', id: 'add-label', placeholder: 'new label', autocapitalize: 'none', spellcheck: 'false', required: true });
  const changed = async (p) => {
    try {
      await p;
      await renderEntry(id);
    } catch (e) {
      failed(e);
    }
  };
  main.replaceChildren(
    h('p', {}, h('a', { href: '#/entries' }, '← All entries')),
    h('h1', {}, 'Entry ', h('span', { class: 'mono' }, entry.id)),
    h('p', { class: 'muted' }, `Version ${entry.version}, created `, time(entry.createdAt), ', changed ', time(entry.updatedAt)),
    h('section', { class: 'card', 'aria-labelledby': 'st' }, h('h2', { id: 'st' }, 'Live status'), statusBox),
    h('section', { class: 'card', 'aria-labelledby': 'lb' },
      h('h2', { id: 'lb' }, 'Labels'),
      h('ul', { class: 'tag-list' }, entry.labels.map((l) => h('li', {}, h('span', {}, l, entry.clientPorts[l] ? ` (port ${entry.clientPorts[l]})` : ''),
        canWrite ? h('button', { type: 'button', class: 'link small', 'aria-label': `Remove label ${l}`, disabled: entry.labels.length === 1, onclick: () => changed(api('DELETE', `/api/entries/${encodeURIComponent(entry.id)}/labels/${encodeURIComponent(l)}`)) }, '✕') : null))),
      canWrite ? h('form', { class: 'row', id: 'add-label-form', onsubmit: (ev) => {
        ev.preventDefault();
        changed(api('POST', `/api/entries/${encodeURIComponent(entry.id)}/labels`, { label: labelInput.value.trim() }));
      } }, h('label', { for: 'add-label', class: 'inline' }, 'Add label'), labelInput, h('button', { type: 'submit' }, 'Add')) : null),
    canWrite ? h('section', { class: 'card', 'aria-labelledby': 'ac' },
      h('h2', { id: 'ac' }, 'Actions'),
      h('div', { class: 'row' },
        h('button', { type: 'button', class: 'secondary', id: 'rotate', onclick: async () => {
          if (!(await confirmDialog('Rotate the secret?', `The hidden server of ${entry.id} stops registering until it gets the new agent file.`, 'Rotate secret'))) return;
          try {
            const issued = await api('POST', `/api/entries/${encodeURIComponent(entry.id)}/rotate-secret`, undefined, { 'if-match': `"${entry.version}"` });
            stopPolling();
            main.replaceChildren(secretPanel(issued, 'New secret'));
            document.getElementById('download-agent').focus();
          } catch (e) {
            failed(e);
          }
        } }, 'Rotate secret…'),
        h('button', { type: 'button', class: 'danger', id: 'delete', onclick: async () => {
          if (!(await confirmDialog('Delete this entry?', `Entry ${entry.id} and its labels ${entry.labels.join(', ')} will be removed; its hidden server can no longer register.`, 'Delete entry'))) return;
          try {
            await api('DELETE', `/api/entries/${encodeURIComponent(entry.id)}`, undefined, { 'if-match': `"${entry.version}"` });
            say(`Entry ${entry.id} deleted.`);
            go('#/entries');
          } catch (e) {
            failed(e);
          }
        } }, 'Delete…'))) : null,
    h('section', { class: 'card', 'aria-labelledby': 'pr' }, h('h2', { id: 'pr' }, 'Pairings'), h('label', { for: 'pairings-label', class: 'inline' }, 'Label'), labelSelect, pairingsBox),
    h('section', { class: 'card', 'aria-labelledby': 'dc' }, h('h2', { id: 'dc' }, 'Pairings per day'), dailyBox),
    h('section', { class: 'card', 'aria-labelledby': 'at' }, h('h2', { id: 'at' }, 'Registration attempts'), attemptsBox),
  );
  await Promise.all([loadStatus(), loadPairings(), loadHistory()]);
  poll(() => Promise.all([loadStatus(), loadPairings(), loadHistory()]));
}

// ---- API keys ------------------------------------------------------------------------------

async function renderKeys() {
  if (!state.me.permissions.includes('keys')) {
    main.replaceChildren(h('h1', {}, 'API keys'), h('p', {}, 'Managing keys needs the keys permission; this key does not have it.'));
    return;
  }
  const [keys, sessions] = await Promise.all([api('GET', '/api/keys'), api('GET', '/api/sessions')]);
  const keyName = new Map(keys.map((k) => [k.id, k.name]));
  const name = h('input', { type: 'text', id: 'key-name', required: true, maxlength: 100 });
  const perms = ['read', 'write', 'keys'].map((p) => h('input', { type: 'checkbox', id: `perm-${p}`, value: p, checked: p === 'read' }));
  const expires = h('input', { type: 'date', id: 'key-expires' });
  const origins = h('textarea', { id: 'key-origins', rows: 2, placeholder: 'https://ops.example.com', spellcheck: 'false' });
  const created = h('div');
  main.replaceChildren(
    h('h1', {}, 'API keys'),
    created,
    table(['Name', 'ID', 'Permissions', 'State', 'Expires', 'Origins', 'Last used', ''], keys.map((k) => h('tr', { 'data-key': k.id },
      cell('Name', k.name), cell('ID', h('span', { class: 'mono' }, k.id)), cell('Permissions', k.permissions.join(', ')),
      cell('State', h('span', { class: k.state === 'active' ? 'live' : 'bad' }, k.state)), cell('Expires', k.expiresAt ? new Date(k.expiresAt).toLocaleDateString() : 'never'),
      cell('Origins', k.origins.join(' ') || '—'), cell('Last used', time(k.lastUsedAt)),
      cell('', h('div', { class: 'row' }, h('a', { href: `#/key/${encodeURIComponent(k.id)}` }, 'Log'),
        k.state === 'active' ? h('button', { type: 'button', class: 'danger small', 'aria-label': `Revoke key ${k.name}`, onclick: async () => {
          if (!(await confirmDialog('Revoke this key?', `${k.name} (${k.id}) stops working at once, and its sessions end${k.id === state.me.id ? ' — including this one' : ''}.${k.management ? ' The CLI uses this key: it works through the API again after the daemon restarts and writes a new admin.key.' : ''}`, 'Revoke key'))) return;
          try {
            await api('DELETE', `/api/keys/${encodeURIComponent(k.id)}`);
            say(`Key ${k.name} revoked.`);
            await renderKeys();
          } catch (e) {
            if (!(e instanceof ApiError && e.status === 401)) failed(e);
          }
        } }, 'Revoke') : null))))),
    h('section', { class: 'card', 'aria-labelledby': 'ss' }, h('h2', { id: 'ss' }, 'Signed-in sessions'),
      sessions.length === 0 ? h('p', { class: 'muted' }, 'No open sessions.') : table(['Key', 'Since', 'Browser', ''], sessions.map((x) => h('tr', { 'data-session': x.id },
        cell('Key', keyName.get(x.keyId) ?? x.keyId), cell('Since', time(x.createdAt)), cell('Browser', h('span', { class: 'muted' }, x.userAgent.slice(0, 80))),
        cell('', x.id === state.sessionId ? h('span', { class: 'muted' }, 'this session') : h('button', { type: 'button', class: 'secondary small', 'aria-label': `End session of ${keyName.get(x.keyId) ?? x.keyId} since ${x.createdAt}`, onclick: async () => {
          try {
            await api('DELETE', `/api/sessions/${encodeURIComponent(x.id)}`);
            say('Session ended.');
            await renderKeys();
          } catch (e) {
            failed(e);
          }
        } }, 'End')))))),
    h('form', { class: 'card', id: 'key-form', onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const body = {
          name: name.value.trim(),
          permissions: perms.filter((p) => p.checked).map((p) => p.value),
          expiresAt: expires.value ? new Date(expires.value + 'T23:59:59').toISOString() : null,
          origins: origins.value.split(/\s+/).filter(Boolean),
        };
        const k = await api('POST', '/api/keys', body);
        await renderKeys();
        document.querySelector('#keys-created')?.remove();
        main.insertBefore(h('section', { class: 'card secret-box', id: 'keys-created' }, h('h2', {}, `Key ${k.name} created`), h('p', {}, h('strong', {}, 'Shown once: '), 'copy it now.'), h('p', {}, h('code', { id: 'new-key' }, k.key))), main.children[1]);
        document.getElementById('new-key').focus?.();
      } catch (e) {
        failed(e);
      }
    } },
    h('h2', {}, 'Create a key'),
    h('label', { for: 'key-name' }, 'Name'), name,
    h('fieldset', {}, h('legend', {}, 'Permissions'), perms.map((p) => h('label', { class: 'inline', for: p.id }, p, p.value))),
    h('label', { for: 'key-expires' }, 'Expires (optional)'), expires,
    h('label', { for: 'key-origins' }, 'Allowed browser origins (optional, for CORS)'), origins,
    h('p', {}, h('button', { type: 'submit' }, 'Create key'))),
  );
}

async function renderKeyLog(id) {
  const [key, log] = await Promise.all([api('GET', `/api/keys/${encodeURIComponent(id)}`), api('GET', `/api/keys/${encodeURIComponent(id)}/log`)]);
  main.replaceChildren(
    h('p', {}, h('a', { href: '#/keys' }, '← All keys')),
    h('h1', {}, `Access log of ${key.name}`),
    log.length === 0 ? h('p', { class: 'muted' }, 'No requests recorded.') : table(['When', 'Request', 'Status', 'From'], log.map((r) => h('tr', {},
      cell('When', time(r.at)), cell('Request', h('span', { class: 'mono' }, `${r.method} ${r.path}`)), cell('Status', String(r.status)), cell('From', h('span', { class: 'mono' }, r.from))))),
  );
}

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
