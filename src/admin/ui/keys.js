// API keys: list, create (shown once), revoke, sessions, access log.
import { ApiError, api, failed } from './api.js';
import { cell, confirmDialog, h, main, say, table, time } from './dom.js';
import { state } from './state.js';


export async function renderKeys() {
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

export async function renderKeyLog(id) {
  const [key, log] = await Promise.all([api('GET', `/api/keys/${encodeURIComponent(id)}`), api('GET', `/api/keys/${encodeURIComponent(id)}/log`)]);
  main.replaceChildren(
    h('p', {}, h('a', { href: '#/keys' }, '← All keys')),
    h('h1', {}, `Access log of ${key.name}`),
    log.length === 0 ? h('p', { class: 'muted' }, 'No requests recorded.') : table(['When', 'Request', 'Status', 'From'], log.map((r) => h('tr', {},
      cell('When', time(r.at)), cell('Request', h('span', { class: 'mono' }, `${r.method} ${r.path}`)), cell('Status', String(r.status)), cell('From', h('span', { class: 'mono' }, r.from))))),
  );
}
