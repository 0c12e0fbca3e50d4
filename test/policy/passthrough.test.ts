/**
 * SNI passthrough clients (the shared port, `clientMode: passthrough`) go through their label's
 * policy like a client on a client port: a denied address gets a TCP reset before it costs a
 * responder, a client over the rate likewise, and an allowed one reaches the hidden server with
 * TLS end to end. The real daemon and agent, curl as the mobile client from 127.0.0.1 and
 * 127.0.0.2; both engines.
 */
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { selfSigned } from '../agent/fixtures.js';
import { curl } from '../helpers/curl.js';
import { startAgent, startDaemon, stopAll, type Daemon, type Proc } from '../helpers/daemon.js';
import { closeServer, listen } from '../helpers/net.js';

const own = selfSigned('hidden.test', ['pass.localhost']);
let server: https.Server | null = null;
let agent: Proc | null = null;

afterEach(async () => {
  await agent?.stop();
  agent = null;
  if (server) {
    server.closeAllConnections();
    await closeServer(server);
    server = null;
  }
  await stopAll();
});

/** curl to the label on the shared port from `from`; its exit code and the hidden server's body. */
async function fetchFrom(d: Daemon, ca: string, from: string): Promise<{ code: number; body: string }> {
  const port = d.registrarPort;
  const r = await curl(['-s', '--interface', from, '--resolve', `pass.localhost:${port}:127.0.0.1`, '--cacert', ca, `https://pass.localhost:${port}/x`]);
  return { code: r.code, body: r.stdout.toString() };
}

/** Sets the label's policy through the CLI (admin API) and waits until the relay has it. */
async function policy(d: Daemon, args: string[]): Promise<void> {
  const before = d.proc.lines.filter((l) => l.msg === 'label policies changed').length;
  const r = await d.cli(['entries', 'policy', 'pass', ...args]);
  expect(r.stderr).toBe('');
  await d.proc.until(() => d.proc.lines.filter((l) => l.msg === 'label policies changed').length > before, 'the policy applied');
}

describe.each(['splice', 'stream'])('SNI passthrough under a label policy, %s engine', (engine) => {
  it('resets a denied address and a client over the rate; lets the others through to the hidden server', async () => {
    const d = await startDaemon({ sharedPort: true, relayEngine: engine });
    server = https.createServer({ cert: own.cert, key: own.key }, (req, res) => res.end(`hidden saw ${req.url}`));
    const hidden = await listen(server);
    const file = await d.addEntry(['pass'], ['--client-mode', 'passthrough']);
    agent = await startAgent(file, `127.0.0.1:${hidden}`);
    await agent.waitLog('registration established');
    const ca = path.join(d.dir, 'hidden.pem');
    fs.writeFileSync(ca, own.cert);

    await policy(d, ['--deny', '127.0.0.2/32']);
    expect(await fetchFrom(d, ca, '127.0.0.1')).toEqual({ code: 0, body: 'hidden saw /x' });
    const denied = await fetchFrom(d, ca, '127.0.0.2');
    expect(denied.code).not.toBe(0);
    expect(denied.body).toBe('');
    await d.proc.waitLog('mobile client refused', 1, 10_000, { label: 'pass', why: 'denied' });

    // A rate of one new pairing per 100 s with a burst of 1: the second client is refused.
    await policy(d, ['--clear', '--rate', '0.01/1']);
    expect(await fetchFrom(d, ca, '127.0.0.1')).toEqual({ code: 0, body: 'hidden saw /x' });
    expect((await fetchFrom(d, ca, '127.0.0.1')).code).not.toBe(0);
    await d.proc.waitLog('mobile client refused', 1, 10_000, { label: 'pass', why: 'rate' });
    // Its own bucket: another address still gets through.
    expect(await fetchFrom(d, ca, '127.0.0.2')).toEqual({ code: 0, body: 'hidden saw /x' });
  });
});
