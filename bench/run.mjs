// `npm run bench`: the benchmark of issue 3. Not a test: it measures, interleaved, with the
// median of several repetitions, every row this machine can run (direct, bare splice relay,
// taas splice, taas stream, HAProxy, socat), prints markdown tables with ratios to direct and
// to HAProxy, checks the targets, and writes bench/results/latest.json (partial.json when only
// some rows or measurements ran).
//
//   node bench/run.mjs [--reps N] [--seconds S] [--pairings N] [--rss N] [--only k1,k2]
//                      [--skip bulk,latency,pairings,registration,rss,handover] [--engine-rows] [--quick]
//                      [--handover 1000,5000]
// (--engine-rows adds the stream engine alone; the splice engine alone is always a row)
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { machine } from './lib/machine.mjs';
import { bulk, latency, pairings, registrationUnderLoad, rss } from './lib/measure.mjs';
import { handover } from './lib/handover.mjs';
import { buildTools, freePort, median, root } from './lib/proc.mjs';
import { agentTargets, ratios, render, targets } from './lib/report.mjs';
import { fresh, variants } from './lib/variants.mjs';

const USAGE = 'usage: node bench/run.mjs [--reps N] [--seconds S] [--pairings N] [--rss N] [--only k1,k2] [--skip bulk,latency,pairings,registration,rss,handover] [--handover N,N] [--engine-rows] [--quick]';
/** The flags above; a wrong one gets the usage line, not a stack trace. */
function flags() {
  try {
    return parseArgs({
      options: {
        reps: { type: 'string', default: '5' },
        seconds: { type: 'string', default: '1.5' },
        pairings: { type: 'string', default: '1000' },
        rss: { type: 'string', default: '5000' },
        only: { type: 'string' },
        skip: { type: 'string', default: '' },
        'engine-rows': { type: 'boolean', default: false },
        quick: { type: 'boolean', default: false },
        handover: { type: 'string', default: '1000,5000' },
        'no-raise': { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    });
  } catch (e) {
    console.error(`bench: ${e.message}\n${USAGE}`);
    process.exit(2);
  }
}
const { values: o } = flags();
if (o.help) {
  console.log(USAGE);
  process.exit(0);
}

// 5,000 pairings need ~10,000 descriptors here and in the relay: raise the soft limit to the
// hard one by re-running under a shell that does (a process cannot raise its own from Node).
const soft = Number(spawnSync('sh', ['-c', 'ulimit -Sn']).stdout.toString());
const hard = spawnSync('sh', ['-c', 'ulimit -Hn']).stdout.toString().trim();
if (!o['no-raise'] && String(soft) !== hard) {
  const r = spawnSync('sh', ['-c', `ulimit -n ${hard} && exec "$0" "$@"`, process.execPath, ...process.argv.slice(1), '--no-raise'], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const reps = o.quick ? 1 : Number(o.reps);
const seconds = o.quick ? 1 : Number(o.seconds);
const nPairings = o.quick ? 200 : Number(o.pairings);
const skip = new Set(o.skip.split(',').filter(Boolean));
const limits = { soft: Number(spawnSync('sh', ['-c', 'ulimit -Sn']).stdout.toString()), hard: Number(hard) };
const rssN = Math.min(o.quick ? 500 : Number(o.rss), Math.floor((limits.soft - 200) / 2));

for (const need of ['dist/relay/engines/stream.js', 'dist/auth/totp.js', 'bin/taas-server']) {
  if (!fs.existsSync(path.join(root, need))) {
    console.error(`bench: ${need} missing; run npm run build (and npm run build:native) first`);
    process.exit(2);
  }
}
buildTools();

const m = machine();
const log = (s) => process.stderr.write(`${s}\n`);
log(`bench: ${m.cpu}, ${m.cpus} CPUs, ${m.kernel}, Node ${m.node}; descriptors soft ${limits.soft} / hard ${limits.hard}`);

const { rows: all, skipped } = variants({ engineRows: o['engine-rows'] });
const only = o.only ? new Set(o.only.split(',')) : null;
const rows = only ? all.filter((v) => only.has(v.key)) : all;
for (const s of skipped) log(`bench: row ${s.key} skipped: ${s.why}`);

const started = Date.now();
const runs = {}; // key -> metric -> [results]
const put = (v, metric, r) => ((runs[v.key] ??= {})[metric] ??= []).push(r);
/** Each repetition visits the rows in a rotated order, so no row always runs first or last. */
const rotate = (list, i) => list.map((_, j) => list[(i + j) % list.length]);

// SNI passthrough rows measure pairing (their clients open with a ClientHello, which loadgen's
// bulk and latency streams do not send): they are left out of those two measurements.
const streamRows = rows.filter((v) => !v.key.endsWith('-sni') && !v.key.includes('-sni-'));

try {
  for (const v of rows) {
    log(`bench: starting ${v.label}`);
    await v.start();
  }

  if (!skip.has('bulk')) {
    for (let rep = 0; rep < reps; rep++) {
      for (const streams of [1, 4]) {
        for (const v of rotate(streamRows, rep)) {
          const r = await bulk(v, { streams, seconds });
          put(v, `bulk${streams}`, r);
          log(`bulk ${streams} stream(s) rep ${rep + 1}: ${v.key} ${r.gbps.toFixed(2)} GB/s, ${r.cpuPerGB.toFixed(3)} CPU s/GB${r.agentCpuPerGB !== undefined ? `, agent ${r.agentCpuPerGB.toFixed(3)} CPU s/GB` : ''}`);
        }
      }
    }
  }

  if (!skip.has('latency')) {
    for (let rep = 0; rep < reps; rep++) {
      for (const pinned of [true, false]) {
        for (const size of [1, 64]) {
          for (const v of rotate(streamRows, rep)) {
            const r = await latency(v, { size, pinned, iters: 5000 });
            put(v, `${pinned ? 'pinned' : 'unpinned'}${size}`, r);
            log(`latency ${size} B ${pinned ? 'pinned' : 'unpinned'} rep ${rep + 1}: ${v.key} p50 ${r.p50us} µs p99 ${r.p99us} µs`);
          }
        }
      }
    }
  }

  // Pairings: the bare relay is one thread per direction by design (a throughput ceiling, not a
  // server), and socat forks per connection; both are still measured, for reference.
  if (!skip.has('pairings')) {
    for (let rep = 0; rep < reps; rep++) {
      for (const v of rotate(rows, rep)) {
        const r = await pairings(v, { n: nPairings, conc: 32 });
        put(v, 'pairings', r);
        log(`pairings rep ${rep + 1}: ${v.key} ${r.perSec.toFixed(0)}/s, p99 ${r.p99ms.toFixed(2)} ms${r.regPerSec ? `, registrations ${r.regPerSec.toFixed(0)}/s` : ''}`);
      }
    }
  }

  if (!skip.has('registration')) {
    for (let rep = 0; rep < Math.min(reps, 2); rep++) {
      for (const v of rotate(rows.filter((x) => x.kind === 'taas'), rep)) {
        const r = await registrationUnderLoad(v, { seconds: o.quick ? 1.5 : 3 });
        put(v, 'reg', r);
        log(`registration rep ${rep + 1}: ${v.key} p99 idle ${r.idleP99ms.toFixed(2)} ms (${r.idleN}), saturated ${r.busyP99ms.toFixed(2)} ms (${r.busyN}) at ${r.busyGbps.toFixed(2)} GB/s`);
      }
    }
  }

  // RSS last: thousands of sockets leave garbage behind that would blur the earlier phases.
  // Only for relays that serve many connections in one process. Each measurement runs in a
  // fresh process (Node relays warmed by a few hundred pairings first), and the median of up
  // to three is kept: how much of V8's and malloc's freed memory stays resident varies by a
  // few hundred bytes per pairing from run to run.
  if (!skip.has('rss')) {
    const measured = rows.filter((x) => x.kind === 'taas' || x.key === 'haproxy' || x.key.startsWith('engine-'));
    for (let rep = 0; rep < Math.min(reps, 3); rep++) {
      for (const v of rotate(measured, rep)) {
        const f = fresh(v);
        await f.start();
        if (f.nodeGc) await pairings(f, { n: 300, conc: 32 });
        let r;
        try {
          r = await rss(f, { n: rssN });
        } finally {
          await f.stop();
        }
        put(v, 'rss', r);
        log(`rss at ${rssN} rep ${rep + 1}: ${v.key} ${(r.marginalPerPairing / 1024).toFixed(2)} KB per pairing marginal (whole growth ${(r.perPairing / 1024).toFixed(2)}), idle responder ${(r.marginalPerIdleResponder / 1024).toFixed(2)} KB marginal (whole ${(r.perIdleResponder / 1024).toFixed(2)})`);
      }
    }
  }
} finally {
  for (const v of rows) await v.stop().catch((e) => log(`bench: stopping ${v.key}: ${e.message}`));
}

// The hand-over (issue 16), after everything else: each a daemon of its own, once per size.
const handovers = [];
if (!skip.has('handover')) {
  const engines = rows.filter((x) => x.kind === 'taas').map((x) => x.engine);
  for (const engine of engines) {
    for (const n of (o.quick ? '200' : o.handover).split(',').map(Number)) {
      const lo = 40000 + Math.floor(Math.random() * 10) * 1000;
      const r = await handover(engine, n, { registrar: await freePort(), admin: await freePort(), range: [lo, lo + 999] }).catch((e) => ({ n, error: e.message }));
      handovers.push({ engine, ...r });
      log(r.error ? `handover ${engine} ${n}: failed: ${r.error}` : `handover ${engine} ${n} pairings + ${r.idle} idle: ${r.handoverMs} ms hand-over, restart ${r.restartMs.toFixed(0)} ms, longest pause ${r.maxPauseMs.toFixed(0)} ms, ${r.usable}/${n} usable after`);
    }
  }
}

/** Median of each numeric field over the repetitions. */
function med(list) {
  if (!list?.length) return undefined;
  const out = {};
  for (const k of Object.keys(list[0])) out[k] = median(list.map((x) => x[k]));
  return out;
}

const res = {
  when: new Date().toISOString(),
  durationSeconds: Math.round((Date.now() - started) / 1000),
  machine: m,
  config: { reps, bulkSeconds: seconds, pairings: nPairings, pairingConcurrency: 32, rssN, latencyIters: 5000, descriptorLimits: limits },
  skipped,
  rows: {},
};
for (const v of rows) {
  const r = runs[v.key] ?? {};
  res.rows[v.key] = {
    label: v.label,
    bulk1: med(r.bulk1),
    bulk4: med(r.bulk4),
    lat: { pinned1: med(r.pinned1), pinned64: med(r.pinned64), unpinned1: med(r.unpinned1), unpinned64: med(r.unpinned64) },
    pairings: med(r.pairings),
    reg: med(r.reg),
    rss: med(r.rss),
    runs: r,
  };
}
res.handover = handovers;
res.ratios = ratios(res);
res.targets = targets(res);
res.agentTargets = agentTargets(res);

res.loadAverageAtEnd = os.loadavg().map((x) => Math.round(x * 100) / 100);
const text = render(res);
process.stdout.write(`\n${text}`);
fs.mkdirSync(path.join(root, 'bench', 'results'), { recursive: true });
res.markdown = text;
// Only a complete run replaces latest.json; a partial one (--only, --skip, --quick) goes beside it.
const partial = Boolean(o.only || o.skip || o.quick);
const file = partial ? 'partial.json' : 'latest.json';
res.partial = partial;
fs.writeFileSync(path.join(root, 'bench', 'results', file), JSON.stringify(res, null, 2) + '\n');
log(`bench: done in ${res.durationSeconds} s; bench/results/${file} written`);
