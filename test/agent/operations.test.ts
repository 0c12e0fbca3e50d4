/**
 * Issue 13, agent operations, with the compiled `taas-agent` against real HTTPS registrars:
 * Prometheus metrics on --metrics, a one-line status on SIGUSR1, the engine named at start,
 * and a pool spread over the relay nodes of the agent file, moving off a node that stops
 * answering.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Agent, AGENT_DEFAULTS } from '../../src/agent/agent.js';
import { silentLogger } from '../../src/agent/log.js';
import { engineAvailability } from '../../src/relay/engines/select.js';
import { idleCount, ROOT, spawnProc, stopAll, tempDir, type Proc } from '../helpers/daemon.js';
import { pollUntil, readAll, writeFlushed } from '../helpers/net.js';
import { agentFile, certs, FakeRegistrar, pairingSignal, Target } from './fixtures.js';

let closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  await stopAll();
  for (const c of closers.splice(0).reverse()) await c();
});
beforeAll(() => void certs());

function writeFile(content: unknown): string {
  const f = path.join(tempDir('taas-agent-ops-'), 'agent.json');
  fs.writeFileSync(f, JSON.stringify(content));
  return f;
}

async function registrar(): Promise<FakeRegistrar> {
  const r = await new FakeRegistrar().start();
  closers.push(() => r.close());
  return r;
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

/** The value of one series in Prometheus text, or undefined. */
function metric(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

function startCli(args: string[]): Proc {
  return spawnProc('taas-agent', path.join(ROOT, 'bin/taas-agent'), args);
}

describe('taas-agent operations', () => {
  it('--metrics: idle and paired responders, registrations by result, reconnects and bytes; SIGUSR1 logs one status line', async () => {
    const r = await registrar();
    const echo = await new Target((s) => s.on('data', (d: Buffer) => s.write(d)).on('end', () => s.end())).start();
    closers.push(() => echo.close());
    const p = startCli(['--config', writeFile(agentFile(r.port)), '--target', `127.0.0.1:${echo.port}`, '--pool', '2', '--metrics', '127.0.0.1:0']);
    await p.until(() => p.lines.some((l) => l.msg === 'starting'), 'starting line');
    const start = p.lines.find((l) => l.msg === 'starting')!;
    expect(start.engine).toBe(engineAvailability().splice ? 'splice' : 'stream');
    const url = `http://${String(start.metrics)}/metrics`;
    await p.until(() => idleCount(p) === 2, '2 idle');

    let m = (await get(url)).body;
    expect(metric(m, 'taas_agent_idle_responders{label="demo"}')).toBe(2);
    expect(metric(m, 'taas_agent_paired_responders{label="demo"}')).toBe(0);
    expect(metric(m, 'taas_agent_registrations_total{label="demo",result="ok"}')).toBe(2);
    expect(metric(m, 'taas_agent_pool_size{label="demo"}')).toBe(2);
    expect(metric(m, `taas_agent_relay_node_up{node="127.0.0.1:${r.port}"}`)).toBe(1);

    // A pairing: the signal, 5 octets each way; paired while it lasts, counted when it ends.
    const relay = r.accepted[0]!.socket;
    const back = readAll(relay);
    await writeFlushed(relay, Buffer.concat([pairingSignal(), Buffer.from('hello')]));
    await p.waitLog('paired with a mobile client');
    await r.until(() => r.accepted.length === 3); // refilled
    m = (await get(url)).body;
    expect(metric(m, 'taas_agent_paired_responders{label="demo"}')).toBe(1);
    expect(metric(m, 'taas_agent_pairings_total{label="demo"}')).toBe(1);
    relay.end();
    expect((await back).data.toString()).toBe('hello');
    await p.waitLog('pairing ended');
    m = (await get(url)).body;
    expect(metric(m, 'taas_agent_bytes_total{label="demo",direction="up"}')).toBe(5);
    expect(metric(m, 'taas_agent_bytes_total{label="demo",direction="down"}')).toBe(5);

    // The relay drops an idle registration: a reconnect.
    r.accepted[1]!.socket.end();
    await p.waitLog('registration closed while idle');
    await r.until(() => r.accepted.length === 4);
    m = (await get(url)).body;
    expect(metric(m, 'taas_agent_reconnects_total{label="demo"}')).toBe(1);
    expect((await get(url.replace('/metrics', '/other'))).status).toBe(404);

    p.child.kill('SIGUSR1');
    const status = await p.waitLog('status');
    expect(status).toMatchObject({ stopping: false, pools: [{ label: 'demo', idle: 2, paired: 0 }], nodes: [{ node: `127.0.0.1:${r.port}`, answering: true }] });
    expect(p.running).toBe(true);
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
  });

  it('a bad --metrics address is one line and exit 2', async () => {
    const r = await registrar();
    const taken = r.port; // a port in use
    const p = startCli(['--config', writeFile(agentFile(r.port)), '--target', '127.0.0.1:1', '--metrics', `127.0.0.1:${taken}`]);
    expect(await p.exited).toBe(2);
    expect(p.stderr.trim()).toMatch(/^taas-agent: cannot serve --metrics on 127\.0\.0\.1:\d+: EADDRINUSE$/);
  });
});

describe('relay nodes of the agent file', () => {
  it('spreads the pool evenly, and moves it to the other node when one stops answering', async () => {
    const r1 = await registrar();
    const r2 = await registrar();
    const t = await new Target().start();
    closers.push(() => t.close());
    const file = agentFile(r1.port, { servers: [{ host: '127.0.0.1', port: r2.port }] });
    const a = new Agent({ ...AGENT_DEFAULTS, file, target: { host: '127.0.0.1', port: t.port }, labels: ['demo'], pool: 4, tls: false, serverFirst: false, log: silentLogger(), retryBaseMs: 20, retryCapMs: 200 });
    closers.push(() => a.stop());
    a.start();
    await pollUntil(() => a.snapshot()[0]!.idle === 4);
    expect([r1.accepted.length, r2.accepted.length]).toEqual([2, 2]);
    expect(a.nodes.snapshot().map((n) => n.idle)).toEqual([2, 2]);

    // Node 1 goes away: its registrations end and it no longer answers.
    await r1.close();
    await pollUntil(() => r2.accepted.length === 4 && a.snapshot()[0]!.idle === 4, 10_000);
    expect(a.nodes.snapshot()).toMatchObject([{ idle: 0, answering: false }, { idle: 4, answering: true }]);
  });
});
