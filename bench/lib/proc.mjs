// Process helpers for the benchmark: the C tools, running loadgen, CPU time and RSS from /proc,
// pinning with taskset, ports.
import { execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const binDir = path.join(root, 'bench', '.bin');
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

export function have(cmd) {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Compiles bench/c/*.c into bench/.bin (gcc -O2). */
export function buildTools() {
  fs.mkdirSync(binDir, { recursive: true });
  for (const [src, out] of [['loadgen.c', 'loadgen'], ['bare-splice.c', 'bare-splice']]) {
    execFileSync('gcc', ['-O2', '-Wall', '-pthread', '-o', path.join(binDir, out), path.join(root, 'bench', 'c', src)], { stdio: 'inherit' });
  }
}

/** Runs loadgen; `pin` = on CPU 0 only; `nice` = at that niceness. Resolves with its JSON line. */
export function loadgen(args, { pin = false, nice = 0, timeoutMs = 120_000 } = {}) {
  let argv = [path.join(binDir, 'loadgen'), ...args];
  if (pin) argv = ['taskset', '-c', '0', ...argv];
  if (nice) argv = ['nice', '-n', String(nice), ...argv];
  const cmd = argv.shift();
  return new Promise((resolve, reject) => {
    execFile(cmd, argv, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`loadgen ${args.join(' ')}: ${stderr.trim() || err.message}`));
      resolve(JSON.parse(stdout.trim().split('\n').pop()));
    });
  });
}

/**
 * Runs loadgen with --sync: `onReady` runs once every connection is up (before the first octet),
 * `onEnd` when the last octet arrived. Resolves with its JSON line.
 */
export function loadgenSynced(args, { onReady, onEnd, nice = 0, timeoutMs = 120_000 }) {
  let argv = [path.join(binDir, 'loadgen'), ...args, '--sync'];
  if (nice) argv = ['nice', '-n', String(nice), ...argv];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    let out = '';
    let err = '';
    let seen = 0;
    child.stderr.on('data', (d) => (err += d));
    let hooks = Promise.resolve();
    child.stdout.on('data', (d) => {
      out += d;
      const lines = out.split('\n');
      for (; seen < lines.length - 1; seen++) {
        const line = lines[seen];
        hooks = hooks.then(async () => {
          if (line === 'ready') {
            await onReady?.();
            child.stdin.end('go\n');
          } else if (line === 'end') await onEnd?.();
        });
      }
    });
    child.on('exit', async (code) => {
      clearTimeout(timer);
      await hooks;
      if (code !== 0) return reject(new Error(`loadgen ${args.join(' ')}: ${err.trim() || `exit ${code}`}`));
      resolve(JSON.parse(out.trim().split('\n').pop()));
    });
  });
}

/** CPU seconds used by a process and its reaped children (utime+stime+cutime+cstime). */
export function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14..17 of proc(5), counted from after the command name (which starts at field 3).
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK;
}

/** Resident set size in bytes (VmRSS). */
export function rssBytes(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/**
 * Asks a Node relay started with bench/lib/gc-hook.mjs to collect garbage; resolves with the
 * process.memoryUsage() it wrote after collecting (bounded wait).
 */
export async function collectGarbage(pid, memFile) {
  fs.rmSync(memFile, { force: true });
  process.kill(pid, 'SIGWINCH');
  const deadline = Date.now() + 10_000;
  while (!fs.existsSync(memFile)) {
    if (Date.now() > deadline) throw new Error(`process ${pid} wrote no memory report`);
    await new Promise((r) => setTimeout(r, 20));
  }
  await new Promise((r) => setTimeout(r, 50)); // written in one call; let it land whole
  return JSON.parse(fs.readFileSync(memFile, 'utf8'));
}

/** Every thread of `pid` onto `cpus` ("0" or "0-1"). */
export function pin(pid, cpus) {
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
}

/**
 * A port free now, from 10000–19999: below the kernel's ephemeral range (32768+), so that none
 * of the thousands of outgoing connections a run makes can take it before it is listened on (a
 * port the OS chose from that range was once taken that way, EADDRINUSE, between two phases).
 */
export async function freePort() {
  for (;;) {
    const port = 10000 + Math.floor(Math.random() * 10000);
    const ok = await new Promise((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (ok) return port;
  }
}

/** Resolves once something accepts on 127.0.0.1:port (bounded). */
export async function waitListening(port, ms = 15_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listening on ${port} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

export function percentile(xs, p) {
  const v = [...xs].sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  return v[Math.min(v.length - 1, Math.floor(p * v.length))];
}
