// Entries: the list with live status, a new entry, one entry's page.
import { api, failed } from './api.js';
import { bytes, cell, confirmDialog, h, main, say, table, time } from './dom.js';
import { go, poll, POLL_MS, state, stopPolling } from './state.js';


function labelBadges(row) {
  return row.labelStates.map((s) => {
    const live = s.idle > 0;
    const text = live ? `${s.label}: live, ${s.idle} idle` : `${s.label}: ${s.pending > 0 ? 'registering' : 'offline'}`;
    const extra = [s.active ? `${s.active} paired` : null, s.waiting ? `${s.waiting} waiting` : null].filter(Boolean).join(', ');
    return h('span', { class: `badge ${live ? 'live' : s.pending ? 'warn' : 'idle'}`, 'data-label-state': s.label, 'data-live': live ? 'yes' : 'no' }, live ? '● ' : '○ ', text, extra ? ` (${extra})` : '');
  });
}

export async function renderEntries() {
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

export async function renderNew() {
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

/**
 * A label's client mode: redirect (a 307 to a client port) or passthrough (TLS routed by SNI on
 * the shared port). Changed with a JSON Patch of /clientMode, conditional on the shown version.
 */
function modeControl(entry, label, canWrite, changed) {
  const mode = entry.clientMode?.[label] ?? 'redirect';
  if (!canWrite) return h('span', { class: 'muted', 'data-client-mode': label }, ` ${mode}`);
  return h('select', { class: 'small', 'data-client-mode': label, 'aria-label': `Client mode of ${label}`, onchange: (ev) => {
    const op = { op: 'add', path: `/clientMode/${label}`, value: ev.target.value };
    changed(api('PATCH', `/api/entries/${encodeURIComponent(entry.id)}`, [op], { 'content-type': 'application/json-patch+json', 'if-match': `"${entry.version}"` }));
  } }, ['redirect', 'passthrough'].map((m) => h('option', { value: m, selected: m === mode ? true : null }, m)));
}

export async function renderEntry(id) {
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
      h('ul', { class: 'tag-list' }, entry.labels.map((l) => h('li', {}, h('span', {}, l, entry.clientPorts[l] ? ` (port ${entry.clientPorts[l]})` : '', entry.policies?.[l] ? ' (policy)' : ''),
        modeControl(entry, l, canWrite, changed),
        h('a', { href: `#/label/${encodeURIComponent(l)}`, class: 'small', 'data-label-view': l, 'aria-label': `Charts and policy of ${l}` }, 'charts'),
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
