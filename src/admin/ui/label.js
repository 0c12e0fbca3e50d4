// The label view (#/label/NAME): the last hour of one label over every node, as charts an
// operator reads at a glance (pairings per minute, octets per second each way, idle responders,
// refusals by reason), its traffic policy, and the refusals of the hour by reason. Charts are
// uPlot, bundled from npm and served by the admin server (vendor/, built by npm run build).
import uPlot from './vendor/uplot.js';
import { api, failed } from './api.js';
import { cell, h, main, say, table } from './dom.js';
import { poll, state } from './state.js';

const REASON_COLOURS = { denied: '#c0392b', quota: '#8e44ad', 'max-pairings': '#d35400', 'max-per-client': '#e67e22', rate: '#f1c40f', 'no-responder': '#7f8c8d', 'queue-full': '#2c3e50', timeout: '#16a085', 'conn-limit': '#34495e', closing: '#95a5a6' };

function describe(policy) {
  if (!policy) return [];
  const out = [];
  if (policy.allow) out.push(['Allow', policy.allow.join(', ')]);
  if (policy.deny) out.push(['Deny', policy.deny.join(', ')]);
  if (policy.maxPairings !== undefined) out.push(['Pairings at once', String(policy.maxPairings)]);
  if (policy.maxPairingsPerClient !== undefined) out.push(['Per client address', String(policy.maxPairingsPerClient)]);
  if (policy.rate) out.push(['New pairings', `${policy.rate.perSecond}/s per client, burst ${policy.rate.burst}`]);
  if (policy.bandwidth !== undefined) out.push(['Bandwidth', `${policy.bandwidth} octets/s each way`]);
  if (policy.quota !== undefined) out.push(['Quota', `${policy.quota} octets per UTC day`]);
  return out;
}

function policyBox(hist) {
  const own = describe(hist.policy);
  const fallback = describe(hist.defaultPolicy);
  if (own.length) return h('dl', { id: 'label-policy', class: 'pairs' }, own.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
  if (fallback.length) return h('div', { id: 'label-policy' }, h('p', { class: 'muted' }, 'No policy of its own; the config\u2019s defaultPolicy applies:'), h('dl', { class: 'pairs' }, fallback.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])));
  return h('p', { id: 'label-policy', class: 'muted' }, 'No policy: no limits beyond the relay\u2019s own. Set one with taas-server entries policy ' + hist.label + '.');
}

/** A field of the policy form: its input, and how its value goes into the policy. */
function field(id, text, value, hint) {
  const input = h('input', { type: 'text', id, name: id, value: value ?? '', autocomplete: 'off', spellcheck: 'false', placeholder: hint });
  return { input, row: h('div', { class: 'field' }, h('label', { for: id }, text), input) };
}

/**
 * The policy form (write permission): every member, empty for none; saved as a JSON Patch of
 * the entry's /policies/LABEL at the version read (a change made elsewhere meanwhile: 412).
 */
function policyForm(label, policy, onSaved) {
  const p = policy ?? {};
  const f = {
    allow: field('pol-allow', 'Allow (CIDRs, comma-separated)', p.allow?.join(', '), '192.0.2.0/24, 2001:db8::/32'),
    deny: field('pol-deny', 'Deny (CIDRs)', p.deny?.join(', '), '198.51.100.7'),
    maxPairings: field('pol-max', 'Pairings at once', p.maxPairings, 'no limit'),
    maxPairingsPerClient: field('pol-per-client', 'Per client address', p.maxPairingsPerClient, 'no limit'),
    rate: field('pol-rate', 'New pairings per second per client [/burst]', p.rate ? `${p.rate.perSecond}/${p.rate.burst}` : '', 'e.g. 2/5'),
    bandwidth: field('pol-bandwidth', 'Bandwidth, octets/s each way', p.bandwidth, 'no limit'),
    quota: field('pol-quota', 'Quota, octets per UTC day', p.quota, 'no limit'),
  };
  const read = () => {
    const out = {};
    const list = (v) => v.split(',').map((x) => x.trim()).filter(Boolean);
    const num = (k) => {
      const v = f[k].input.value.trim();
      if (v !== '') out[k] = Number(v);
    };
    if (list(f.allow.input.value).length) out.allow = list(f.allow.input.value);
    if (list(f.deny.input.value).length) out.deny = list(f.deny.input.value);
    num('maxPairings');
    num('maxPairingsPerClient');
    num('bandwidth');
    num('quota');
    const r = f.rate.input.value.trim();
    if (r !== '') {
      const [ps, burst] = r.split('/').map((x) => x.trim());
      out.rate = { perSecond: Number(ps), ...(burst ? { burst: Number(burst) } : {}) };
    }
    return out;
  };
  return h('form', { id: 'policy-form', class: 'stack-form', onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const entry = (await api('GET', '/api/entries')).find((e) => e.labels.includes(label));
      if (!entry) throw new Error(`no entry has label ${label}`);
      const next = read();
      const has = entry.policies?.[label] !== undefined;
      const ops = Object.keys(next).length === 0 ? (has ? [{ op: 'remove', path: `/policies/${label}` }] : []) : [{ op: 'add', path: `/policies/${label}`, value: next }];
      if (ops.length) await api('PATCH', `/api/entries/${encodeURIComponent(entry.id)}`, ops, { 'content-type': 'application/json-patch+json', 'if-match': `"${entry.version}"` });
      say(`Policy of ${label} saved; new pairings get it at once.`);
      await onSaved();
    } catch (e) {
      failed(e);
    }
  } }, Object.values(f).map((x) => x.row), h('p', { class: 'muted' }, 'Empty fields set no limit; all empty removes the policy (the config\u2019s defaultPolicy then applies).'), h('p', {}, h('button', { type: 'submit' }, 'Save policy')));
}

/** The series of one chart: x (seconds since the epoch) and the y lists. */
function chartData(hist) {
  const xs = hist.minutes.map((_, i) => (hist.start + i * hist.minuteMs) / 1000);
  const reasons = [...new Set(hist.minutes.flatMap((m) => Object.keys(m.refusals)))].sort();
  return {
    reasons,
    pairings: [xs, hist.minutes.map((m) => m.pairings)],
    octets: [xs, hist.minutes.map((m) => m.bytesUp / 60), hist.minutes.map((m) => m.bytesDown / 60)],
    idle: [xs, hist.minutes.map((m) => m.idle)],
    refusals: [xs, ...reasons.map((r) => hist.minutes.map((m) => m.refusals[r] ?? 0))],
  };
}

function chart(id, title, series, data, width) {
  const box = h('figure', { class: 'chart', id, 'aria-label': title }, h('figcaption', {}, title));
  const plot = new uPlot({ width, height: 180, series: [{}, ...series], axes: [{}, { size: 60 }], legend: { show: true }, cursor: { drag: { x: false, y: false } } }, data, box);
  return { box, plot };
}

export async function renderLabel(label) {
  const gen = ++state.gen;
  const hist = await api('GET', `/api/labels/${encodeURIComponent(label)}/history`);
  // Two charts a row on a wide screen, one on a phone: the grid's columns are at least 440 px.
  const width = Math.max(260, Math.min(420, main.clientWidth - 80));
  let d = chartData(hist);
  const charts = {
    pairings: chart('chart-pairings', 'Pairings per minute', [{ label: 'pairings', stroke: '#2e86de', width: 2 }], d.pairings, width),
    octets: chart('chart-octets', 'Octets per second', [{ label: 'up (client → hidden server)', stroke: '#27ae60', width: 2 }, { label: 'down', stroke: '#8e44ad', width: 2 }], d.octets, width),
    idle: chart('chart-idle', 'Idle responders', [{ label: 'idle', stroke: '#16a085', width: 2 }], d.idle, width),
  };
  const refusalsBox = h('div');
  const totalsBox = h('div');
  let refusalChart = null;
  const drawTotals = () => {
    const totals = d.reasons.map((r, i) => [r, d.refusals[i + 1].reduce((a, b) => a + b, 0)]);
    totalsBox.replaceChildren(totals.length === 0 ? h('p', { class: 'muted', id: 'refusal-totals' }, 'No client refused in the last hour.') : h('div', { id: 'refusal-totals' }, table(['Reason', 'Refused in the last hour'], totals.map(([r, n]) => h('tr', { 'data-reason': r }, cell('Reason', r), cell('Refused', String(n)))))));
  };
  // One series per reason seen: a new reason means a new chart.
  const drawRefusals = () => {
    refusalChart?.plot.destroy();
    refusalChart = chart('chart-refusals', 'Refusals per minute, by reason', d.reasons.map((r) => ({ label: r, stroke: REASON_COLOURS[r] ?? '#555', width: 2 })), d.refusals, width);
    refusalsBox.replaceChildren(refusalChart.box);
    drawTotals();
  };
  drawRefusals();
  if (gen !== state.gen) return;
  main.replaceChildren(
    h('p', {}, h('a', { href: '#/entries' }, '← All entries')),
    h('h1', {}, 'Label ', h('span', { class: 'mono' }, hist.label)),
    h('p', { class: 'muted' }, 'The last hour over every node, one point per minute. Octets count when pairings end.'),
    h('section', { class: 'card', 'aria-labelledby': 'pol' }, h('h2', { id: 'pol' }, 'Traffic policy'), policyBox(hist),
      state.me.permissions.includes('write') ? h('details', {}, h('summary', {}, 'Change the policy'), policyForm(hist.label, hist.policy, () => renderLabel(label))) : null),
    h('section', { class: 'card charts', 'aria-labelledby': 'ch' }, h('h2', { id: 'ch' }, 'Last hour'), h('div', { class: 'chart-grid' }, charts.pairings.box, charts.octets.box, charts.idle.box, refusalsBox)),
    h('section', { class: 'card', 'aria-labelledby': 'rf' }, h('h2', { id: 'rf' }, 'Refusals by reason'), totalsBox),
  );
  poll(async () => {
    if (gen !== state.gen) return;
    const next = await api('GET', `/api/labels/${encodeURIComponent(label)}/history`);
    const before = d.reasons.join(',');
    d = chartData(next);
    charts.pairings.plot.setData(d.pairings);
    charts.octets.plot.setData(d.octets);
    charts.idle.plot.setData(d.idle);
    if (d.reasons.join(',') !== before) return drawRefusals();
    refusalChart.plot.setData(d.refusals);
    drawTotals();
  });
}
