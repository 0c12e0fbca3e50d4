/**
 * `taas-server restart` on real processes (issue 16): the running daemon hands its listeners,
 * idle responders and established pairings to a new daemon over the Unix socket in the data dir
 * (SCM_RIGHTS); a pairing in progress keeps working across it, octets in order, the old
 * process exits 0; a new daemon that cannot start leaves the old one serving, in one line.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { helloMessage, inRecords } from '../helpers/client-hello.js';
import { connect, pollUntil, readExactly, writeFlushed } from '../helpers/net.js';
import { Proc, ROOT, spawnProc, startAgent, startDaemon, stopAll, type Daemon } from '../helpers/daemon.js';
import { clientPort } from '../helpers/registrar.js';
import { stripPairingSignal } from '../helpers/signal.js';
import { Registrant } from './responder.js';
import { runningPid, stopPid } from './handover-util.js';
import { metrics } from './util.js';

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  await stopAll();
});

/** An echo target for the agent: what a hidden server would be. */
async function echoTarget(): Promise<string> {
  const server = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise<void>((r) => server.close(() => r())));
  return `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

async function echo(s: net.Socket, text: string): Promise<string> {
  const got = readExactly(s, Buffer.byteLength(text));
  s.write(text);
  return (await got).toString();
}

/**
 * Another build of the project in a temp dir: dist/ and bin/ copied (so that `edit` can change
 * dist/), the rest linked. What `restart` run from its bin/ starts is that build.
 */
function otherBuild(d: Daemon, edit: (file: string, text: string) => string): string {
  const dir = path.join(d.dir, 'other-build');
  // bin/ copied too: Node follows a linked main script to its real place, and ../dist from there.
  for (const f of ['dist', 'bin']) fs.cpSync(path.join(ROOT, f), path.join(dir, f), { recursive: true });
  for (const f of ['build', 'node_modules', 'package.json', 'src']) fs.symlinkSync(path.join(ROOT, f), path.join(dir, f));
  for (const f of ['protocol/handover.js', 'daemon.js', 'relay/handover.js']) {
    const file = path.join(dir, 'dist', f);
    fs.writeFileSync(file, edit(f, fs.readFileSync(file, 'utf8')));
  }
  return dir;
}

/**
 * `taas-server restart`; resolves with its exit code and what it printed. The new daemon it
 * starts inherits its stdout, so its log lines arrive on the same Proc (`lines`).
 */
async function restart(d: Daemon, configFile = d.configFile, build = ROOT): Promise<{ code: number | null; proc: Proc }> {
  const proc = spawnProc('taas-server restart', path.join(build, 'bin/taas-server'), ['restart', '--config', configFile]);
  // 'exit', not 'close': the new daemon keeps the stdout pipe open after restart has exited.
  const code = await new Promise<number | null>((r) => proc.child.once('exit', (c) => r(c)));
  await proc.until(() => /\n$/.test(proc.stdout) || proc.stderr.endsWith('\n') || proc.stdout + proc.stderr === '', 'restart output', 5000);
  return { code, proc };
}

describe('taas-server restart (hand-over)', () => {
  it.each([
    ['stream', 'stream'],
    ['splice', 'splice'],
    ['stream', 'splice'],
    ['splice', 'stream'],
  ])('%s → %s: a pairing in progress and the idle responders survive; the old daemon exits 0', async (from, to) => {
    const d = await startDaemon({ relayEngine: from });
    const agent = await startAgent(await d.addEntry(['ho']), await echoTarget(), [], { pool: 3 });
    void agent;
    const port = await clientPort(d, 'ho');
    const c = await connect(port);
    closers.push(() => void c.destroy());
    expect(await echo(c, 'before the restart\n')).toBe('before the restart\n');

    const next = path.join(d.dir, 'next.json');
    fs.writeFileSync(next, JSON.stringify({ ...JSON.parse(fs.readFileSync(d.configFile, 'utf8')), relayEngine: to }));
    const { code, proc: r } = await restart(d, next);
    const pid = runningPid(d);
    closers.push(stopPid(pid));
    expect(code).toBe(0);
    expect(r.stdout).toMatch(/restarted: pid \d+ serves now \(handed over from pid \d+: 1 pairings/);
    expect(pid).not.toBe(d.proc.child.pid);
    expect(await d.proc.exited).toBe(0);
    // The agent keeps 3 idle: the one paired was replaced before the restart.
    expect(d.proc.logs('handed over to the new daemon')[0]).toMatchObject({ pairings: 1, idle: 3, kept: 0 });

    // The new daemon's log comes through restart's stdout, which it inherited: read as it arrives.
    expect(await r.waitLog('taas-server ready')).toMatchObject({ engine: to });
    // The same connection, relayed by the new daemon; octets in order.
    expect(await echo(c, 'after the restart\n')).toBe('after the restart\n');
    // The client port was handed over: a new client is paired with an idle responder.
    const c2 = await connect(port);
    closers.push(() => void c2.destroy());
    expect(await echo(c2, 'second client\n')).toBe('second client\n');
    // The registrar's listener too: the same port answers with a 307 to the same client port.
    expect(await clientPort(d, 'ho')).toBe(port);
  }, 60_000);

  it('onto a build whose start fails: the old daemon keeps serving; restart says why in one line', async () => {
    const d = await startDaemon({ relayEngine: 'stream' });
    await startAgent(await d.addEntry(['ho']), await echoTarget(), [], { pool: 2 });
    const c = await connect(await clientPort(d, 'ho'));
    closers.push(() => void c.destroy());
    expect(await echo(c, 'before\n')).toBe('before\n');
    const broken = otherBuild(d, (f, text) =>
      f === 'daemon.js' ? text.replace('static async start(config, configFile, logger, onFatal, opts = {}) {', "$& throw new Error('this build cannot start');") : text,
    );
    const { code, proc: r } = await restart(d, d.configFile, broken);
    expect(code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^taas-server: the new daemon did not start: this build cannot start; pid \d+ keeps serving$/)]);
    expect(d.proc.running).toBe(true);
    // Nothing was handed over: the pairing and the registrar are the old daemon's, untouched.
    expect(await echo(c, 'after\n')).toBe('after\n');
    expect(await clientPort(d, 'ho')).toBeGreaterThan(0);
    expect(d.proc.logs('handed over to the new daemon')).toHaveLength(0);
  }, 60_000);

  it.each(['stream', 'splice'])('%s: a new daemon that fails after receiving the state gives it back; the old one serves on as before', async (engine) => {
    const d = await startDaemon({ relayEngine: engine });
    await startAgent(await d.addEntry(['ho']), await echoTarget(), [], { pool: 2 });
    const port = await clientPort(d, 'ho');
    const c = await connect(port);
    closers.push(() => void c.destroy());
    expect(await echo(c, 'before\n')).toBe('before\n');
    const broken = otherBuild(d, (f, text) =>
      f === 'relay/handover.js' ? text.replace('async adopt(state, fds, ops) {', "$& throw new Error('cannot take this state in');") : text,
    );
    const { code, proc: r } = await restart(d, d.configFile, broken);
    expect(code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^taas-server: the new daemon did not start: cannot take this state in; pid \d+ keeps serving$/)]);
    await d.proc.waitLog('took back what was handed out');
    expect(d.proc.logs('hand-over failed before the new daemon took ownership; serving on')[0]).toMatchObject({ err: 'cannot take this state in' });
    expect(d.proc.running).toBe(true);
    // The pairing handed out and taken back relays on; the idle responder, the client port and
    // the registrar serve; and a real restart afterwards still works.
    expect(await echo(c, 'after\n')).toBe('after\n');
    const c2 = await connect(port);
    closers.push(() => void c2.destroy());
    expect(await echo(c2, 'second\n')).toBe('second\n');
    expect(await clientPort(d, 'ho')).toBe(port);
    const again = await restart(d);
    closers.push(stopPid(runningPid(d)));
    expect(again.code).toBe(0);
    expect(await d.proc.exited).toBe(0);
    expect(await echo(c, 'after the real one\n')).toBe('after the real one\n');
  }, 90_000);

  it('onto a build with another hand-over format: refused, and the restart falls back to a drain', async () => {
    const d = await startDaemon({ relayEngine: 'stream' });
    await startAgent(await d.addEntry(['ho']), await echoTarget(), [], { pool: 1 });
    const newer = otherBuild(d, (f, text) => (f === 'protocol/handover.js' ? text.replace('HANDOVER_VERSION = 1;', 'HANDOVER_VERSION = 2;') : text));
    const { code, proc: r } = await restart(d, d.configFile, newer);
    const pid = runningPid(d);
    closers.push(stopPid(pid));
    expect(code).toBe(0);
    expect(r.stdout).toMatch(/restarted: pid \d+ serves now \(the running daemon \(pid \d+\) refused the hand-over: hand-over format 2 asked, this daemon speaks 1: drained pid \d+, then started\)/);
    expect(d.proc.logs('hand-over refused: hand-over format 2 asked, this daemon speaks 1; the new daemon falls back to a drain')).toHaveLength(1);
    expect(await d.proc.exited).toBe(0);
    expect(d.proc.logs('draining')).toHaveLength(1);
    // The new build serves on the same registrar port; the agent registers with it again.
    await r.waitLog('taas-server ready');
    expect(pid).not.toBe(d.proc.child.pid);
  }, 60_000);

  it('a new daemon that cannot start leaves the old one serving; restart says why in one line', async () => {
    const d = await startDaemon({ relayEngine: 'stream' });
    await startAgent(await d.addEntry(['ho']), await echoTarget(), [], { pool: 1 });
    const bad = path.join(d.dir, 'bad.json');
    fs.writeFileSync(bad, JSON.stringify({ dataDir: d.dataDir, taasPort: 0, adminPort: 0, relayEngine: 'warp' }));
    const { code, proc: r } = await restart(d, bad);
    expect(code).not.toBe(0);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^taas-server: .*relayEngine/);
    expect(d.proc.running).toBe(true);
    expect(d.proc.logs('handed over to the new daemon')).toHaveLength(0);
    const c = await connect(await clientPort(d, 'ho'));
    closers.push(() => void c.destroy());
    expect(await echo(c, 'still here\n')).toBe('still here\n');
  }, 60_000);

  it('the hand-over socket is mode 0600, and a peer of another uid is refused even when the mode lets it in', async () => {
    const d = await startDaemon({ relayEngine: 'stream' });
    const sock = path.join(d.dataDir, 'handover.sock');
    expect(fs.statSync(sock).mode & 0o777).toBe(0o600);
    if (process.getuid?.() !== 0) return; // switching to another uid needs root (CI runs as root)
    // Opened up by hand, so that only the daemon's own check stands between them.
    fs.chmodSync(sock, 0o666);
    fs.chmodSync(d.dataDir, 0o755);
    fs.chmodSync(path.dirname(d.dataDir), 0o755);
    const hello = "const b=Buffer.from(JSON.stringify({t:'hello',version:1,pid:process.pid}));const h=Buffer.alloc(8);h.writeUInt32BE(b.length,0);" +
      "const s=require('net').connect(process.argv[1],()=>s.write(Buffer.concat([h,b])));let got='';s.on('data',(x)=>got+=x);" +
      "s.on('close',()=>{console.log(got.includes('welcome')?'welcomed':'refused');});s.on('error',(e)=>console.log('error '+e.code));";
    const child = spawn(process.execPath, ['-e', hello, sock], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (x: Buffer) => (out += x.toString()));
    await new Promise((r) => child.once('close', r));
    // Closed at once, before a welcome (the write may meet the close: EPIPE).
    expect(out).toContain('refused');
    expect(out).not.toContain('welcomed');
    await d.proc.waitLog('hand-over connection refused: another user');
    expect(d.proc.logs('handed over to the new daemon')).toHaveLength(0);
    expect(d.proc.running).toBe(true);
  }, 60_000);

  it('under systemd (NOTIFY_SOCKET) the new daemon names itself the main process (MAINPID=, sent before it lets the old one go)', async () => {
    const d = await startDaemon({ relayEngine: 'stream' });
    // systemd's side of the notify socket, played by socat: one datagram, printed.
    const sock = path.join(d.dir, 'notify.sock');
    const socat = new Proc('socat', spawn('socat', ['-u', `UNIX-RECV:${sock}`, '-'], { stdio: ['ignore', 'pipe', 'pipe'] }));
    closers.push(async () => void (await socat.stop()));
    await pollUntil(() => fs.existsSync(sock), 10_000, 10, 'socat listening');
    const proc = spawnProc('taas-server restart', path.join(ROOT, 'bin/taas-server'), ['restart', '--config', d.configFile], { NOTIFY_SOCKET: sock });
    const code = await new Promise<number | null>((res) => proc.child.once('exit', (c) => res(c)));
    const pid = runningPid(d);
    closers.push(stopPid(pid));
    expect(code).toBe(0);
    await socat.until(() => socat.stdout.includes('READY=1'), 'the notification');
    expect(socat.stdout).toBe(`MAINPID=${pid}\nREADY=1`);
    expect(await d.proc.exited).toBe(0);
  }, 60_000);

  it('a waiting client and a registration still pending are handed over: the responder that connects later serves the client, its early octets first', async () => {
    const d = await startDaemon({ relayEngine: 'auto', clientWaitTimeout: 60, registrationTimeout: 60 });
    const reg = new Registrant(await d.addEntry(['wait']), { host: '127.0.0.1', port: d.registrarPort });
    const first = await reg.respond('wait');
    closers.push(() => void first.destroy());
    first.on('data', (b) => first.write(b));
    const port = await clientPort(d, 'wait');
    const c1 = await connect(port);
    closers.push(() => void c1.destroy());
    expect(await echo(c1, 'one\n')).toBe('one\n'); // the only responder is busy now
    // A registration whose hidden server has not connected yet, and a client that waits.
    const pending = await reg.register('wait');
    const c2 = await connect(port);
    closers.push(() => void c2.destroy());
    c2.write('sent while waiting\n');
    await pollUntil(async () => (await metrics(d)).get('taas_waiting_clients{label="wait"}') === 1, 10_000, 20, 'the client waits');

    const { code } = await restart(d);
    closers.push(stopPid(runningPid(d)));
    expect(code).toBe(0);
    expect(d.proc.logs('handed over to the new daemon')[0]).toMatchObject({ pairings: 1, waiting: 1, registrations: 1 });
    // The hidden server connects to the port it was given before the restart, with its cookie.
    const late = net.connect({ host: '127.0.0.1', port: pending.port });
    closers.push(() => void late.destroy());
    await new Promise((r) => late.once('connect', r));
    late.on('error', () => {});
    // A cookie responder: the pairing signal (PROXY header) comes first, then the client's octets.
    const { signal } = stripPairingSignal(late);
    const got = readExactly(late, 'sent while waiting\n'.length);
    late.write(`TAAS-Cookie ${pending.cookie}\r\n`);
    expect((await got).toString()).toBe('sent while waiting\n');
    expect((await signal).addresses?.clientPort).toBe(c2.localPort);
    late.write('reply\n');
    expect((await readExactly(c2, 6)).toString()).toBe('reply\n');
    expect(await echo(c1, 'still one\n')).toBe('still one\n');
  }, 60_000);

  it.each(['stream', 'splice'])('%s, sharedPort: the shared port, a pending shared registration and an idle cookie responder (its pairing signal too) are handed over', async (engine) => {
    const d = await startDaemon({ sharedPort: true, relayEngine: engine, registrationTimeout: 60 });
    const port = d.registrarPort;
    const reg = new Registrant(await d.addEntry(['sp'], ['--client-mode', 'passthrough']), { host: '127.0.0.1', port });
    const hello = (): Buffer => inRecords(helloMessage({ sni: 'sp.localhost', alpn: ['h2'], others: [], sessionId: new Uint8Array(0) }), []);
    /** A cookie responder on the shared port: the PROXY header (pairing signal) taken off what it reads. */
    const respond = async (cookie: string) => {
      const s = await connect(port);
      closers.push(() => void s.destroy());
      s.on('error', () => {});
      const { signal } = stripPairingSignal(s);
      await writeFlushed(s, `TAAS-Cookie ${cookie}\r\n`);
      return { s, signal };
    };
    /** A passthrough client: its ClientHello reaches `r` first, after the signal naming it; octets back. */
    const passthrough = async (r: { s: net.Socket; signal: Promise<{ addresses?: { clientPort?: number } }> }) => {
      const c = await connect(port);
      closers.push(() => void c.destroy());
      const h = hello();
      c.write(h);
      expect(await readExactly(r.s, h.length)).toEqual(h);
      expect((await r.signal).addresses?.clientPort).toBe(c.localPort);
      r.s.write('from the hidden server');
      expect((await readExactly(c, 22)).toString()).toBe('from the hidden server');
    };
    const first = await reg.register('sp');
    expect(first.port).toBe(port);
    const idle = await respond(first.cookie);
    await pollUntil(async () => (await metrics(d)).get('taas_idle_responders{label="sp"}') === 1, 10_000, 20, 'the responder is idle');
    const pending = await reg.register('sp'); // its hidden server comes after the restart

    const { code, proc: r } = await restart(d);
    closers.push(stopPid(runningPid(d)));
    expect(r.stderr).toBe('');
    expect(code).toBe(0);
    expect(d.proc.logs('handed over to the new daemon')[0]).toMatchObject({ idle: 1, registrations: 1 });
    // The idle responder, paired by the new daemon with a passthrough client: it still hears the signal.
    await passthrough(idle);
    // The registration pending at the restart: its cookie is known to the new daemon's shared port.
    await passthrough(await respond(pending.cookie));
    // And a registration made now, on the same port.
    const fresh = await reg.register('sp');
    expect(fresh.port).toBe(port);
    await passthrough(await respond(fresh.cookie));
  }, 60_000);

  it.each(['stream', 'splice'])('%s: a pairing of a label with a bandwidth policy stays limited by it after the hand-over', async (engine) => {
    const RATE = 1_000_000;
    const WINDOW_MS = 2000;
    const d = await startDaemon({ relayEngine: engine });
    const file = await d.addEntry(['bw']);
    const set = await d.cli(['entries', 'policy', 'bw', '--bandwidth', String(RATE)]);
    expect(set.code, set.stderr).toBe(0);
    const r = await new Registrant(file, { host: '127.0.0.1', port: d.registrarPort }).respond('bw');
    closers.push(() => void r.destroy());
    const c = await connect(await clientPort(d, 'bw'));
    closers.push(() => void c.destroy());
    c.on('error', () => {});
    // The hidden server sends without pause from the client's first octet: only the relay limits it.
    const block = Buffer.alloc(64 * 1024, 0x5a);
    const flood = (): void => {
      while (!r.destroyed && r.write(block)) {
        // until the socket's buffer is full
      }
      if (!r.destroyed) r.once('drain', flood);
    };
    r.once('data', flood);
    let got = 0;
    c.on('data', (b: Buffer) => void (got += b.length));
    c.write('go');
    await pollUntil(() => got > 0, 10_000, 20, 'octets flow');

    const { code } = await restart(d);
    closers.push(stopPid(runningPid(d)));
    expect(code).toBe(0);
    expect(d.proc.logs('handed over to the new daemon')[0]).toMatchObject({ pairings: 1 });
    const from = got;
    const t0 = Date.now();
    await new Promise((done) => setTimeout(done, WINDOW_MS)); // a rate is measured over a window
    const rate = ((got - from) * 1000) / (Date.now() - t0);
    // Within the rate (a tenth of a second's burst of new buckets, and scheduling, allowed for);
    // unlimited, loopback moves hundreds of MB/s.
    expect(rate).toBeGreaterThan(0);
    expect(rate).toBeLessThan(RATE * 1.3);
  }, 60_000);

  it('with no daemon running: one line naming the data dir, exit 1', async () => {
    const d = await startDaemon({ relayEngine: 'stream' });
    await d.stop();
    const { code, proc } = await restart(d);
    expect(code).toBe(1);
    expect(proc.stderr.trim().split('\n')).toEqual([`taas-server: no running daemon in ${d.dataDir} to restart (start it with taas-server start)`]);
  }, 30_000);
});
