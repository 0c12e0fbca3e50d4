/**
 * SIGTERM on a real daemon: established pairings finish (a 256 MiB transfer arrives intact),
 * registrations are refused with 503 + Retry-After meanwhile, the process exits 0; what is
 * still open at drainTimeout is closed then, not before; a second SIGTERM exits at once; an
 * agent waits out the drain and registers with the daemon that replaces it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closed, connect, readAll, readExactly, sendBytes } from '../helpers/net.js';
import { curlLabel } from '../helpers/curl.js';
import { startAgent, startDaemon, stopAll, idleCount } from '../helpers/daemon.js';
import { FixedReplyServer, HashSink, clientPort, metrics, register } from './util.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await stopAll();
  for (const c of closers.splice(0)) await c();
});

const MiB = 1024 * 1024;

describe('drain on SIGTERM', () => {
  it('a 256 MiB transfer in progress completes intact; registrations get 503 + Retry-After; exit 0', async () => {
    const d = await startDaemon({ drainTimeout: 60 });
    const sink = await new HashSink(16 * MiB).start();
    closers.push(() => sink.close());
    await startAgent(await d.addEntry(['bulk']), sink.target);

    const client = await connect(await clientPort(d, 'bulk'));
    const reply = readAll(client);
    const paused = sink.paused$();
    const sent = sendBytes(client, 256 * MiB);
    await paused; // 16 MiB have arrived; the rest is held by backpressure

    d.proc.child.kill('SIGTERM');
    await d.proc.waitLog('draining');
    const r = await register(d, 'bulk', 'TOTP username="any", response="000000"');
    expect(r.status).toBe(503);
    expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
    expect(JSON.parse(r.body)).toMatchObject({ errorCode: 'TAAS_DRAINING' });
    // Load balancers see the drain: not ready, while the process is still alive.
    const ready = await fetch(`http://127.0.0.1:${d.adminPort}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ errorCode: 'TAAS_DRAINING' });
    expect((await fetch(`http://127.0.0.1:${d.adminPort}/healthz`)).status).toBe(200);
    const m = await metrics(d);
    expect(m.get('taas_draining')).toBe(1);
    expect(m.get('taas_registrations_total{result="draining"}')).toBe(1);
    expect(m.get('taas_active_pairings')).toBe(1);

    sink.resume();
    const sha = await sent;
    const got = (await reply).data.toString().trim().split(' ');
    expect(got).toEqual([String(256 * MiB), sha]);
    expect(await d.proc.exited).toBe(0);
    const end = d.proc.logs('pairing ended')[0]!;
    expect(end).toMatchObject({ reason: 'eof', bytesUp: 256 * MiB });
    expect(d.proc.logs('drain timeout reached; closing remaining pairings')).toHaveLength(0);
    expect(d.proc.logs('stopped')).toHaveLength(1);
  }, 90_000);

  it('what is still open at drainTimeout is closed then, not before, and the exit is 0', async () => {
    const d = await startDaemon({ drainTimeout: 1.5 });
    const target = await new FixedReplyServer(10).start();
    closers.push(() => target.close());
    await startAgent(await d.addEntry(['idle']), target.target);
    const client = await connect(await clientPort(d, 'idle'));
    client.write('x');
    await d.proc.waitLog('pairing started');

    const t0 = Date.now();
    d.proc.child.kill('SIGTERM');
    await closed(client, 10_000);
    const cutAfter = Date.now() - t0;
    expect(cutAfter).toBeGreaterThanOrEqual(1400);
    expect(await d.proc.exited).toBe(0);
    expect(d.proc.logs('drain timeout reached; closing remaining pairings')).toHaveLength(1);
    expect(d.proc.logs('pairing ended')[0]).toMatchObject({ reason: 'drain' });
  }, 30_000);

  it('a second SIGTERM exits at once', async () => {
    const d = await startDaemon({ drainTimeout: 600 });
    const target = await new FixedReplyServer(10).start();
    closers.push(() => target.close());
    await startAgent(await d.addEntry(['held']), target.target);
    const client = await connect(await clientPort(d, 'held'));
    client.write('x');
    await d.proc.waitLog('pairing started');
    d.proc.child.kill('SIGTERM');
    await d.proc.waitLog('draining');
    const t0 = Date.now();
    d.proc.child.kill('SIGTERM');
    const code = await d.proc.exited;
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(code).toBe(1);
    expect(d.proc.logs('second signal: exiting now')).toHaveLength(1);
  }, 30_000);

  it('an agent waits out the drain and registers with the daemon that takes over the port', async () => {
    const d = await startDaemon({ drainTimeout: 60 });
    const target = await new FixedReplyServer(1000, 500).start();
    closers.push(() => target.close());
    const agent = await startAgent(await d.addEntry(['moving']), target.target, ['--retry-max', '2']);

    // A pairing in progress keeps the old daemon draining. A second client, paired during the
    // drain, takes the agent's refilled responder: the agent asks for another and is told to wait.
    const port = await clientPort(d, 'moving');
    const held = await connect(port);
    held.write(Buffer.alloc(500));
    await readExactly(held, 1000);
    await agent.waitLog('registration established', 2, 10_000);
    d.proc.child.kill('SIGTERM');
    await d.proc.waitLog('draining');
    const second = await connect(port);
    second.write(Buffer.alloc(500));
    await readExactly(second, 1000);
    second.end();
    await agent.until(() => agent.logs('relay temporarily unavailable', { status: 503 }).length > 0, 'the agent told to wait', 20_000);

    held.end();
    expect(await d.proc.exited).toBe(0);
    await d.restart(); // the replacement: same port, same data dir
    await agent.until(() => idleCount(agent) >= 1 && agent.logs('registration established').length >= 3, 'the agent registered at the replacement', 20_000);
    const r = await curlLabel('moving', d.registrarPort, d.caFile, '/', ['--max-redirs', '0', '-o', '/dev/null', '-w', '%{http_code}']);
    expect(r.stdout.toString()).toBe('307');
    const c = await connect(await clientPort(d, 'moving'));
    c.write(Buffer.alloc(500));
    expect((await readExactly(c, 1000)).length).toBe(1000);
    c.end();
  }, 60_000);
});
