/** `taas-agent` as a user runs it: the compiled bin/, a real registrar, signals. */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { closed, pollUntil, readExactly, writeFlushed } from '../helpers/net.js';
import { idleCount, ROOT, run, spawnProc, stopAll, tempDir } from '../helpers/daemon.js';
import { agentFile, certs, FakeRegistrar, pairingSignal, Target } from './fixtures.js';

let closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await stopAll();
  for (const c of closers.splice(0)) await c();
});
beforeAll(() => void certs());

function writeFile(content: unknown): string {
  const f = path.join(tempDir('taas-agent-cli-'), 'agent.json');
  fs.writeFileSync(f, typeof content === 'string' ? content : JSON.stringify(content));
  return f;
}

/** One line on stderr, prefixed, and no stack trace. */
function expectOneLine(stderr: string, re: RegExp) {
  const lines = stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^taas-agent: /);
  expect(lines[0]).toMatch(re);
  expect(stderr).not.toMatch(/\n\s+at /);
}

describe('taas-agent command line', () => {
  it('--help exits 0 and names every flag', async () => {
    const r = await run('agent', ['--help']);
    expect(r.code).toBe(0);
    for (const f of ['--config', '--target', '--pool', '--tls', '--server-first', '--proxy-protocol', '--metrics', '--engine', '--recycle', '--log-level']) expect(r.stdout).toContain(f);
  });

  it.each([
    [['--config', 'x', '--target', '127.0.0.1:1', '--bogus'], /unknown option '--bogus'/],
    [['--config', 'x'], /--target/],
    [['--config', 'x', '--target', 'nonsense'], /HOST:PORT/],
    [['--config', 'x', '--target', '127.0.0.1:1', '--pool', '0'], /1\.\.1000/],
    [['--config', 'x', '--target', '127.0.0.1:1', '--log-level', 'loud'], /loud/],
  ])('a bad flag gives one line and a non-zero exit: %j', async (args, re) => {
    const r = await run('agent', args as string[]);
    expect(r.code).not.toBe(0);
    expectOneLine(r.stderr, re as RegExp);
  });

  it('an unreadable or invalid agent file gives one line naming it', async () => {
    const missing = await run('agent', ['--config', '/nonexistent/agent.json', '--target', '127.0.0.1:1']);
    expect(missing.code).not.toBe(0);
    expectOneLine(missing.stderr, /\/nonexistent\/agent\.json.*ENOENT/);

    const notJson = writeFile('{ nope');
    const a = await run('agent', ['--config', notJson, '--target', '127.0.0.1:1']);
    expect(a.code).not.toBe(0);
    expectOneLine(a.stderr, /not JSON/);

    const badCa = writeFile({ ...agentFile(1), ca: 'hello' });
    const b = await run('agent', ['--config', badCa, '--target', '127.0.0.1:1']);
    expectOneLine(b.stderr, /ca must be a PEM certificate/);

    const { tls: _t, ...noTls } = agentFile(1);
    const c = await run('agent', ['--config', writeFile(noTls), '--target', '127.0.0.1:1', '--tls']);
    expectOneLine(c.stderr, /no "tls" certificate/);

    const d = await run('agent', ['--config', writeFile(agentFile(1)), '--target', '127.0.0.1:1', '--label', 'other']);
    expectOneLine(d.stderr, /label other is not in the agent file/);
  });

  it('runs a pool, logs without secrets, and stops cleanly on SIGTERM', async () => {
    const r = await new FakeRegistrar().start();
    closers.push(() => r.close());
    const t = await new Target().start();
    closers.push(() => t.close());
    const file = writeFile(agentFile(r.port));
    const p = spawnProc('taas-agent', path.join(ROOT, 'bin/taas-agent'), ['--config', file, '--target', `127.0.0.1:${t.port}`, '--pool', '2', '--log-level', 'debug']);
    await p.until(() => idleCount(p) === 2, '2 idle registrations');
    await r.until(() => r.accepted.length === 2);
    const out = p.stdout;
    expect(out).not.toContain(agentFile(1).secret);
    for (const c of r.issuedCookies) expect(out).not.toContain(c);
    expect(out).not.toMatch(/v1\.\d+\.nonce/);
    expect(out).not.toMatch(/response=/);

    const gone = r.accepted.map((a) => closed(a.socket, 5000));
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
    await Promise.all(gone);
    // The last lines are flushed before the exit.
    expect(p.logs('stopped')).toHaveLength(1);
  });

  it('SIGTERM lets a pairing in progress finish (within --drain), then exits 0', async () => {
    const r = await new FakeRegistrar().start();
    closers.push(() => r.close());
    const t = await new Target((s) => s.on('data', (d: Buffer) => s.write(d))).start();
    closers.push(() => t.close());
    const p = spawnProc('taas-agent', path.join(ROOT, 'bin/taas-agent'), ['--config', writeFile(agentFile(r.port)), '--target', `127.0.0.1:${t.port}`, '--drain', '30']);
    await r.until(() => r.accepted.length === 1);
    const relay = r.accepted[0]!.socket;
    relay.resume();
    await writeFlushed(relay, Buffer.concat([pairingSignal(), Buffer.from('one')]));
    expect((await readExactly(relay, 3)).toString()).toBe('one');

    await r.until(() => r.accepted.length === 2); // the pool refilled after the pairing
    p.child.kill('SIGTERM');
    await p.waitLog('stopping');
    const requests = r.requests.length;
    // The idle registration is closed at once; the pairing is not.
    await closed(r.accepted[1]!.socket, 5000);
    // Still forwarding after the signal...
    await writeFlushed(relay, 'two');
    expect((await readExactly(relay, 3)).toString()).toBe('two');
    expect(p.running).toBe(true);
    // ...and it exits as soon as the pairing ends.
    relay.end();
    await pollUntil(() => t.conns.length === 1);
    t.conns[0]!.end();
    expect(await p.exited).toBe(0);
    // Draining: no registration was made after the signal.
    expect(r.requests.length).toBe(requests);
  });
});
