// The hand-over of issue 16 (`taas-server restart`): a daemon holding N established pairings
// (each echoing) and N/10 idle responders is restarted; measured are the old daemon's own
// hand-over time (from the new daemon's hello to its "taken", as it logs it), the restart
// command's whole run (a new Node process, config, store, engine, then the hand-over), and the
// longest pause one pairing saw (a ping every 2 ms through it, round trips timed); afterwards
// every pairing is checked to still echo.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { root } from './proc.mjs';
import { TaasDaemon } from './taas.mjs';

async function inBatches(n, width, task) {
  const out = new Array(n);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) {
      const i = next++;
      out[i] = await task(i);
    }
  }));
  return out;
}

function echoOnce(s, text) {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (d) => {
      got += d;
      if (got.length >= text.length) {
        s.off('data', onData);
        clearTimeout(t);
        resolve(got === text);
      }
    };
    const t = setTimeout(() => {
      s.off('data', onData);
      reject(new Error('no echo within 30 s'));
    }, 30_000);
    s.setEncoding('utf8');
    s.on('data', onData);
    s.write(text);
  });
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** One hand-over of `n` pairings on `engine` ('splice' or 'stream'). */
export async function handover(engine, n, ports) {
  const d = new TaasDaemon(engine, ports, { logLevel: 'info' });
  const sockets = [];
  let newPid = 0;
  try {
    await d.start();
    const port = await d.nearPort();
    const idle = Math.ceil(n / 10);
    await inBatches(n + idle, 64, async () => {
      const s = await d.responder();
      sockets.push(s);
      s.on('data', (b) => s.write(b));
    });
    const clients = await inBatches(n, 64, async (i) => {
      const c = net.connect({ port, host: '127.0.0.1' });
      c.on('error', () => {});
      sockets.push(c);
      await new Promise((r) => c.once('connect', r));
      if (!(await echoOnce(c, `p${i}\n`))) throw new Error('bad echo before');
      return c;
    });
    // The probe: one pairing pinged every 2 ms; the longest round trip is the pause it saw.
    const probe = clients[0];
    let maxRtt = 0;
    let probing = true;
    const pinging = (async () => {
      while (probing) {
        const t = performance.now();
        await echoOnce(probe, 'x');
        maxRtt = Math.max(maxRtt, performance.now() - t);
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    const t0 = performance.now();
    const r = spawn(process.execPath, [path.join(root, 'bin', 'taas-server'), 'restart', '--config', d.configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    let newLog = "";
    r.stdout.setEncoding("utf8").on("data", (x) => (newLog += x));
    let err = '';
    r.stderr.setEncoding('utf8').on('data', (x) => (err += x));
    const code = await new Promise((res) => r.once('exit', res));
    const restartMs = performance.now() - t0;
    if (code !== 0) throw new Error(`restart exited ${code}: ${err.trim()}`);
    newPid = JSON.parse(fs.readFileSync(path.join(d.dir, 'data', 'daemon.json'), 'utf8')).pid;
    // The old daemon may be gone already: it exits once the new one holds everything, which can be before restart's own exit.
    if (d.child.exitCode === null && d.child.signalCode === null) await new Promise((res) => d.child.once('exit', res));
    probing = false;
    await pinging;
    const line = d.lines.find((l) => l.msg === 'handed over to the new daemon') ?? {};
    const usable = (await inBatches(n, 64, (i) => echoOnce(clients[i], `q${i}\n`))).filter(Boolean).length;
    const took = newLog.split('\n').filter((l) => l.includes('took over from')).map((l) => JSON.parse(l))[0] ?? {};
    return { took, n, idle, handoverMs: line.ms ?? NaN, restartMs, maxPauseMs: maxRtt, handedPairings: line.pairings ?? 0, usable };
  } finally {
    for (const s of sockets) s.destroy();
    if (newPid && alive(newPid)) {
      process.kill(newPid, 'SIGTERM');
      while (alive(newPid)) await new Promise((r) => setTimeout(r, 50));
    }
    await d.stop();
  }
}
