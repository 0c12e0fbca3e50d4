// Turns the medians of a run into markdown tables (stdout, docs/bench.md) with ratios to
// "direct" and to HAProxy computed within the run, and checks the targets of issue 3.

const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '–');
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : NaN);
const kb = (bytes) => (Number.isFinite(bytes) ? (bytes / 1024).toFixed(2) : '–');

function table(head, rows) {
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((h, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const r of rows) lines.push(`| ${r.join(' | ')} |`);
  return lines.join('\n');
}

/** Ratios of every row to direct and to HAProxy, per metric. */
export function ratios(res) {
  const d = res.rows.direct;
  const h = res.rows.haproxy;
  const out = {};
  for (const [key, r] of Object.entries(res.rows)) {
    out[key] = {
      bulk1VsDirect: ratio(r.bulk1?.gbps, d?.bulk1?.gbps),
      bulk1VsHAProxy: ratio(r.bulk1?.gbps, h?.bulk1?.gbps),
      bulk4VsDirect: ratio(r.bulk4?.gbps, d?.bulk4?.gbps),
      bulk4VsHAProxy: ratio(r.bulk4?.gbps, h?.bulk4?.gbps),
      bulk1VsBare: ratio(r.bulk1?.gbps, res.rows.bare?.bulk1?.gbps),
      cpuPerGBVsHAProxy: ratio(r.bulk1?.cpuPerGB, h?.bulk1?.cpuPerGB),
      addedP50PinnedUs1: (r.lat?.pinned1?.p50us ?? NaN) - (d?.lat?.pinned1?.p50us ?? NaN),
      addedP50PinnedUs64: (r.lat?.pinned64?.p50us ?? NaN) - (d?.lat?.pinned64?.p50us ?? NaN),
    };
  }
  return out;
}

export function tables(res) {
  const keys = Object.keys(res.rows);
  const R = res.ratios;
  const label = (k) => res.rows[k].label;
  const out = [];
  out.push('### Bulk throughput (1 MiB writes) and relay CPU');
  out.push(
    table(
      ['row', '1 stream GB/s', '× direct', '× HAProxy', '4 streams GB/s', '× direct', '× HAProxy', 'relay CPU s/GB (1 stream)', 'relay CPU s/GB (4 streams)'],
      keys.map((k) => {
        const r = res.rows[k];
        return [label(k), f(r.bulk1?.gbps), f(R[k].bulk1VsDirect), f(R[k].bulk1VsHAProxy), f(r.bulk4?.gbps), f(R[k].bulk4VsDirect), f(R[k].bulk4VsHAProxy), f(r.bulk1?.cpuPerGB, 3), f(r.bulk4?.cpuPerGB, 3)];
      }),
    ),
  );
  // On a shared machine the least disturbed repetition says most about what a row can do.
  const best = (k, m) => Math.max(...(res.rows[k]?.runs?.[m] ?? []).map((x) => x.gbps).filter(Number.isFinite));
  const bh1 = Number.isFinite(best('haproxy', 'bulk1')) ? best('haproxy', 'bulk1') : NaN;
  const bh4 = Number.isFinite(best('haproxy', 'bulk4')) ? best('haproxy', 'bulk4') : NaN;
  out.push('', `Best of ${res.config.reps} repetitions (GB/s; the least disturbed run of each row):`, '');
  out.push(
    table(
      ['row', '1 stream best', '× HAProxy best', '4 streams best', '× HAProxy best'],
      keys.map((k) => [label(k), f(best(k, 'bulk1')), f(ratio(best(k, 'bulk1'), bh1)), f(best(k, 'bulk4')), f(ratio(best(k, 'bulk4'), bh4))]),
    ),
  );
  out.push('', '### Round-trip latency, ping-pong (µs): p50 / p99');
  out.push(
    table(
      ['row', '1 B pinned', '64 B pinned', '1 B unpinned', '64 B unpinned', 'added p50 pinned, 1 B', 'added p50 pinned, 64 B'],
      keys.map((k) => {
        const l = res.rows[k].lat ?? {};
        const pp = (x) => (x ? `${f(x.p50us, 1)} / ${f(x.p99us, 1)}` : '–');
        return [label(k), pp(l.pinned1), pp(l.pinned64), pp(l.unpinned1), pp(l.unpinned64), f(R[k].addedP50PinnedUs1, 1), f(R[k].addedP50PinnedUs64, 1)];
      }),
    ),
  );
  out.push('', '### Pairings (time-to-pair: connect → first octet at the far end)');
  out.push(
    table(
      ['row', 'pairings/s', 'time-to-pair p50 ms', 'p99 ms'],
      keys.map((k) => [label(k), f(res.rows[k].pairings?.perSec, 0), f(res.rows[k].pairings?.p50ms), f(res.rows[k].pairings?.p99ms)]),
    ),
  );
  const n = res.config.rssN;
  out.push(
    '',
    `### Memory (KB): ${n} pairings established in two halves, in a fresh process; "marginal" = growth over the second half / ${n / 2} (bench/lib/measure.mjs says why); idle responders ${n / 2} at a time`,
  );
  out.push(
    table(
      ['row', 'RSS per pairing, marginal', 'RSS per pairing, whole growth', 'JS heap per pairing, marginal', 'RSS per idle responder, marginal', 'RSS per idle responder, whole growth', 'JS heap per idle responder'],
      keys
        .filter((k) => res.rows[k].rss)
        .map((k) => {
          const r = res.rows[k].rss;
          return [label(k), kb(r.marginalPerPairing), kb(r.perPairing), kb(r.marginalHeapPerPairing), kb(r.marginalPerIdleResponder), kb(r.perIdleResponder), kb(r.heapPerIdleResponder)];
        }),
    ),
  );
  const taas = keys.filter((k) => k.startsWith('taas-'));
  if (taas.length) {
    out.push('', '### Registrations (HTTPS PUT + TOTP/session + port allocation + connect + cookie)');
    out.push(
      table(
        ['row', 'registrations/s (16 in flight)', 'p99 ms idle', 'p99 ms, data path saturated', 'saturated / idle', 'GB/s meanwhile'],
        taas.map((k) => {
          const r = res.rows[k];
          return [label(k), f(r.pairings?.regPerSec, 0), f(r.reg?.idleP99ms), f(r.reg?.busyP99ms), f(ratio(r.reg?.busyP99ms, r.reg?.idleP99ms)), f(r.reg?.busyGbps)];
        }),
      ),
    );
  }
  return out.join('\n');
}

/**
 * Median over repetitions of a/b where a and b ran in the same repetition (next to each other
 * in time), which cancels much of the background load a shared machine adds.
 */
function paired(res, a, b, metric, field) {
  const ra = res.rows[a]?.runs?.[metric] ?? [];
  const rb = res.rows[b]?.runs?.[metric] ?? [];
  const xs = [];
  for (let i = 0; i < Math.min(ra.length, rb.length); i++) xs.push(ratio(ra[i][field], rb[i][field]));
  const v = xs.filter(Number.isFinite).sort((x, y) => x - y);
  if (!v.length) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/**
 * Issue 18: a label with a policy (every member checked, nothing limited) pairs and moves data
 * within 5% of one without, each engine; judged on paired ratios like the others.
 */
function policyTargets(res) {
  const t = [];
  for (const engine of ['splice', 'stream']) {
    const plain = `taas-${engine}`;
    const withPolicy = `taas-${engine}-policy`;
    if (!res.rows[plain] || !res.rows[withPolicy]) continue;
    for (const [metric, field, what] of [['bulk1', 'gbps', '1 stream GB/s'], ['bulk4', 'gbps', '4 streams GB/s'], ['pairings', 'perSec', 'pairings/s']]) {
      const r = paired(res, withPolicy, plain, metric, field);
      if (!Number.isFinite(r)) continue;
      t.push({ target: `${engine}: label policy within 5% of none (${what})`, met: r >= 0.95, detail: `median of per-repetition ratios ${f(r, 3)}×` });
    }
  }
  return t;
}

/** The targets of issue 3 for the splice engine, each met or missed with the figures. */
export function targets(res) {
  const p = policyTargets(res);
  const s = res.rows['taas-splice'];
  const h = res.rows.haproxy;
  const b = res.rows.bare;
  if (!s) return [...p, { target: 'taas splice row', met: null, detail: 'not in this run (addon not built, or left out with --only)' }];
  const R = res.ratios['taas-splice'];
  const rh = res.ratios.haproxy;
  const t = [];
  const add = (target, value, limit, cmp, detail) => t.push({ target, met: Number.isFinite(value) && Number.isFinite(limit) ? cmp(value, limit) : null, detail });
  // Throughput and CPU are judged on paired ratios (see `paired`); the medians are shown too.
  const p1h = paired(res, 'taas-splice', 'haproxy', 'bulk1', 'gbps');
  const p1b = paired(res, 'taas-splice', 'bare', 'bulk1', 'gbps');
  const p4h = paired(res, 'taas-splice', 'haproxy', 'bulk4', 'gbps');
  const pch = paired(res, 'taas-splice', 'haproxy', 'bulk1', 'cpuPerGB');
  const pch4 = paired(res, 'taas-splice', 'haproxy', 'bulk4', 'cpuPerGB');
  const pair = (x) => `median of per-repetition ratios ${f(x)}×`;
  add('1 stream ≥ 1.25× HAProxy', p1h, 1.25, (a, l) => a >= l, `${pair(p1h)}; medians ${f(s.bulk1?.gbps)} vs ${f(h?.bulk1?.gbps)} GB/s (${f(R.bulk1VsHAProxy)}×)`);
  add('1 stream ≥ 0.9× bare splice', p1b, 0.9, (a, l) => a >= l, `${pair(p1b)}; medians ${f(s.bulk1?.gbps)} vs ${f(b?.bulk1?.gbps)} GB/s (${f(R.bulk1VsBare)}×)`);
  add('4 streams ≥ 1.1× HAProxy', p4h, 1.1, (a, l) => a >= l, `${pair(p4h)}; medians ${f(s.bulk4?.gbps)} vs ${f(h?.bulk4?.gbps)} GB/s (${f(R.bulk4VsHAProxy)}×)`);
  add('relay CPU per GB ≤ HAProxy (1 stream)', pch, 1, (a, l) => a <= l, `${pair(pch)}; medians ${f(s.bulk1?.cpuPerGB, 3)} vs ${f(h?.bulk1?.cpuPerGB, 3)} s/GB`);
  add('relay CPU per GB ≤ HAProxy (4 streams)', pch4, 1, (a, l) => a <= l, `${pair(pch4)}; medians ${f(s.bulk4?.cpuPerGB, 3)} vs ${f(h?.bulk4?.cpuPerGB, 3)} s/GB`);
  add('added p50 latency pinned (1 B) ≤ HAProxy', R.addedP50PinnedUs1, rh?.addedP50PinnedUs1, (a, l) => a <= l, `+${f(R.addedP50PinnedUs1, 1)} vs +${f(rh?.addedP50PinnedUs1, 1)} µs`);
  add('added p50 latency pinned (64 B) ≤ HAProxy', R.addedP50PinnedUs64, rh?.addedP50PinnedUs64, (a, l) => a <= l, `+${f(R.addedP50PinnedUs64, 1)} vs +${f(rh?.addedP50PinnedUs64, 1)} µs`);
  add(
    'RSS per established pairing ≤ 1 KB (marginal)',
    s.rss?.marginalPerPairing,
    1024,
    (a, l) => a <= l,
    `${kb(s.rss?.marginalPerPairing)} KB, of which live JS heap ${kb(s.rss?.marginalHeapPerPairing)} KB (HAProxy ${kb(h?.rss?.marginalPerPairing)} KB); whole growth over ${res.config.rssN} from a fresh process ${kb(s.rss?.perPairing)} KB (HAProxy ${kb(h?.rss?.perPairing)} KB)`,
  );
  add('registration p99 saturated ≤ 2× idle', s.reg?.busyP99ms, 2 * (s.reg?.idleP99ms ?? NaN), (a, l) => a <= l, `${f(s.reg?.busyP99ms)} vs ${f(s.reg?.idleP99ms)} ms idle`);
  // HAProxy given 1 MiB pipes too: not what the targets were set against, shown beside them.
  const m = res.rows['haproxy-1m'];
  if (m) {
    const cmp = (target, detail) => t.push({ target, met: null, comparison: true, detail });
    const q1 = paired(res, 'taas-splice', 'haproxy-1m', 'bulk1', 'gbps');
    const q4 = paired(res, 'taas-splice', 'haproxy-1m', 'bulk4', 'gbps');
    const qc = paired(res, 'taas-splice', 'haproxy-1m', 'bulk1', 'cpuPerGB');
    const added = (m.lat?.pinned1?.p50us ?? NaN) - (res.rows.direct?.lat?.pinned1?.p50us ?? NaN);
    cmp('1 stream vs HAProxy with 1 MiB pipes', `${pair(q1)}; medians ${f(s.bulk1?.gbps)} vs ${f(m.bulk1?.gbps)} GB/s`);
    cmp('4 streams vs HAProxy with 1 MiB pipes', `${pair(q4)}; medians ${f(s.bulk4?.gbps)} vs ${f(m.bulk4?.gbps)} GB/s`);
    cmp('relay CPU per GB vs HAProxy with 1 MiB pipes (1 stream)', `${pair(qc)}; medians ${f(s.bulk1?.cpuPerGB, 3)} vs ${f(m.bulk1?.cpuPerGB, 3)} s/GB`);
    cmp('added p50 latency pinned (1 B) vs HAProxy with 1 MiB pipes', `+${f(R.addedP50PinnedUs1, 1)} vs +${f(added, 1)} µs`);
  }
  return [...t, ...p];
}

/**
 * Issue 13's targets for the agent's data path, judged on per-repetition ratios like the rest:
 * through relay and agent ≥ 0.8× through the relay alone (1 and 4 streams), the agent's CPU
 * per GB ≤ 1.2× the daemon's in the same runs, and 4 streams faster than 1.
 */
export function agentTargets(res) {
  const a = res.rows['taas-splice-agent'];
  if (!a) return [];
  const s = res.rows['taas-splice'];
  const t = [];
  const add = (target, value, limit, cmp, detail) => t.push({ target, met: Number.isFinite(value) && Number.isFinite(limit) ? cmp(value, limit) : null, detail });
  const pair = (x) => `median of per-repetition ratios ${f(x)}×`;
  const p1 = paired(res, 'taas-splice-agent', 'taas-splice', 'bulk1', 'gbps');
  const p4 = paired(res, 'taas-splice-agent', 'taas-splice', 'bulk4', 'gbps');
  add('1 stream through relay and agent ≥ 0.8× relay alone', p1, 0.8, (x, l) => x >= l, `${pair(p1)}; medians ${f(a.bulk1?.gbps)} vs ${f(s?.bulk1?.gbps)} GB/s`);
  add('4 streams through relay and agent ≥ 0.8× relay alone', p4, 0.8, (x, l) => x >= l, `${pair(p4)}; medians ${f(a.bulk4?.gbps)} vs ${f(s?.bulk4?.gbps)} GB/s`);
  for (const m of ['bulk1', 'bulk4']) {
    const xs = (a.runs?.[m] ?? []).map((r) => ratio(r.agentCpuPerGB, r.cpuPerGB)).filter(Number.isFinite).sort((x, y) => x - y);
    const med = xs.length ? (xs.length % 2 ? xs[xs.length >> 1] : (xs[xs.length / 2 - 1] + xs[xs.length / 2]) / 2) : NaN;
    add(`agent CPU per GB ≤ 1.2× the daemon's (${m === 'bulk1' ? '1 stream' : '4 streams'})`, med, 1.2, (x, l) => x <= l, `${pair(med)}; medians agent ${f(a[m]?.agentCpuPerGB, 3)} vs daemon ${f(a[m]?.cpuPerGB, 3)} s/GB`);
  }
  add('4 streams faster than 1 (relay and agent)', a.bulk4?.gbps, a.bulk1?.gbps, (x, l) => x > l, `medians ${f(a.bulk4?.gbps)} vs ${f(a.bulk1?.gbps)} GB/s`);
  return t;
}

export function targetLines(list) {
  const verdict = (x) => (x.comparison ? 'for comparison' : x.met === null ? 'NOT MEASURED' : x.met ? 'met' : 'MISSED');
  return list.map((x) => `- ${verdict(x)}: ${x.target} — ${x.detail}`).join('\n');
}

/** The whole report: the machine and method, the tables, the targets (markdown). */
/** The hand-over rows (issue 16): target under 1 s for 5,000 pairings. */
function handoverTable(list) {
  if (!list?.length) return '';
  const lines = ['', '### Hand-over (`taas-server restart`)', '', '| engine | pairings + idle | hand-over | restart command | longest pause of a pairing | usable after |', '|---|---|---|---|---|---|'];
  for (const r of list) {
    if (r.error) lines.push(`| ${r.engine} | ${r.n} | failed: ${r.error} | | | |`);
    else lines.push(`| ${r.engine} | ${r.n} + ${r.idle} | ${r.handoverMs} ms${r.n >= 5000 ? (r.handoverMs < 1000 ? ' (target < 1 s: met)' : ' (target < 1 s: MISSED)') : ''} | ${r.restartMs.toFixed(0)} ms | ${r.maxPauseMs.toFixed(0)} ms | ${r.usable}/${r.n} |`);
  }
  return `${lines.join('\n')}\n`;
}

export function render(res) {
  const m = res.machine;
  const c = res.config;
  const busy = Math.max(m.loadAverageAtStart[0], res.loadAverageAtEnd?.[0] ?? 0) > m.cpus;
  const header = [
    `Machine: ${m.cpu}, ${m.cpus} CPUs, ${m.memoryGB} GB, ${m.kernel} (${m.distro}), Node ${m.node}, ${m.haproxy ?? 'no HAProxy'}, ${m.socat || 'no socat'}.`,
    `Medians of ${c.reps} interleaved repetitions, ${c.bulkSeconds} s bulk runs, ${c.latencyIters} round trips per latency run, ${c.pairings} pairings (${c.pairingConcurrency} in flight) per pairing run; descriptor limit soft ${c.descriptorLimits.soft} / hard ${c.descriptorLimits.hard}; ${res.durationSeconds} s in all (${res.when}).`,
    `Load average (1 min) ${m.loadAverageAtStart[0]} at start, ${res.loadAverageAtEnd?.[0]} at end.${busy ? ` WARNING: other work used this ${m.cpus}-CPU machine during the run; absolute figures are depressed and noisy, paired ratios and best-of figures less so.` : ''}`,
  ].join('\n');
  const agent = res.agentTargets?.length ? `\n### Targets (taas splice + agent)\n${targetLines(res.agentTargets)}\n` : '';
  return `${header}\n\n${tables(res)}\n\n### Targets (taas splice)\n${targetLines(res.targets)}\n${agent}${handoverTable(res.handover)}`;
}
