// The label view (#/label/NAME): the last hour of one label over every node, as charts an
// operator reads at a glance (pairings per minute, octets per second each way, idle responders,
// refusals by reason), its traffic policy, and the refusals of the hour by reason. Charts are
// uPlot, bundled from npm and served by the admin server (vendor/, built by npm run build).
import uPlot from './vendor/uplot.js';
import { api } from './api.js';
import { cell, h, main, table } from './dom.js';
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
    h('section', { class: 'card', 'aria-labelledby': 'pol' }, h('h2', { id: 'pol' }, 'Traffic policy'), policyBox(hist)),
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
