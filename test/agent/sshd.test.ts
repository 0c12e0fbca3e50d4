/**
 * Issue 13 with a real sshd (Debian openssh-server) behind the real agent and daemon: the
 * agent connects to the target only when a client is paired, so idle responders hold nothing
 * at sshd. Logins through the relay and directly to the same sshd, at the same time, all
 * succeed with a pool of 12 (pre-connections would count against MaxStartups); and a client
 * paired after 20 s of idling gets sshd's whole LoginGraceTime (10 s here), not what a
 * pre-connection would have left of it.
 */
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { startAgent } from '../helpers/daemon.js';
import { pollUntil } from '../helpers/net.js';
import { agentStage, freePortOutsideRange, isListening, startSshd, type Sshd } from '../helpers/programs.js';

const stage = agentStage<Sshd>();

/** One non-interactive login that runs `echo`; resolves with its exit code and output. */
function login(s: Sshd, port: number, word: string): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile('ssh', [...s.sshArgs(port), 'echo', word], { timeout: 60_000 }, (e, out, err) => {
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : 255) : 0, out: String(out), err: String(err) });
    });
  });
}

/** An entry with a fixed client port (ssh cannot follow a 307); the running daemon opens it when it sees the entry. */
async function fixedPortEntry(label: string): Promise<{ agentFile: string; port: number }> {
  const port = await freePortOutsideRange();
  const agentFile = await stage.daemon.addEntry([label], ['--client-port', `${label}=${port}`]);
  await pollUntil(() => isListening(port), 10_000, 20, `fixed client port ${port} open`);
  return { agentFile, port };
}

const connectionsAt = (s: Sshd) => (s.proc.stderr.match(/Connection from 127\.0\.0\.1/g) ?? []).length;

describe('sshd behind taas-agent', () => {
  it('pool 12: no connection to sshd while idle; 4 logins through the relay and 4 direct at once all succeed', async () => {
    // MaxStartups 10 (sshd's default start): 8 logins at once fit; 12 pre-connections would not.
    stage.target = await startSshd(['MaxStartups 10:100:10']);
    const { agentFile, port } = await fixedPortEntry('ssh');
    stage.agent = await startAgent(agentFile, `127.0.0.1:${stage.target.port}`, ['--server-first'], { pool: 12 });
    expect(stage.agent.logs('--server-first has no effect: the target is connected when a client is paired')).toHaveLength(1);
    expect(connectionsAt(stage.target)).toBe(0);
    const results = await Promise.all([
      ...Array.from({ length: 4 }, (_, i) => login(stage.target!, port, `relay${i}`)),
      ...Array.from({ length: 4 }, (_, i) => login(stage.target!, stage.target!.port, `direct${i}`)),
    ]);
    for (const [i, r] of results.entries()) {
      expect(r.err, `login ${i}`).toBe('');
      expect(r.code, `login ${i}`).toBe(0);
    }
    expect(results.map((r) => r.out.trim())).toEqual([0, 1, 2, 3].map((i) => `relay${i}`).concat([0, 1, 2, 3].map((i) => `direct${i}`)));
    // sshd saw exactly the 8 logins: none of the 12 idle responders held a connection.
    expect(connectionsAt(stage.target)).toBe(8);
    await stage.agent.waitLog('pairing ended', 4);
  }, 90_000);

  it('a client paired after 20 s idle gets the whole LoginGraceTime (10 s)', async () => {
    stage.target = await startSshd(['LoginGraceTime 10']);
    const { agentFile, port } = await fixedPortEntry('grace');
    // --server-first as a user of the old agent would run it: it must not pre-connect now.
    stage.agent = await startAgent(agentFile, `127.0.0.1:${stage.target.port}`, ['--server-first'], { pool: 1 });
    // The behaviour under test is the idle period itself: the one deliberate wait of the test.
    await new Promise((r) => setTimeout(r, 20_000));
    expect(connectionsAt(stage.target)).toBe(0);
    const r = await login(stage.target, port, 'after-idle');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out.trim()).toBe('after-idle');
    // It was the responder that had idled 20 s, and sshd never timed anyone out.
    const paired = await stage.agent.waitLog('paired with a mobile client');
    expect(Number(paired.idleMs)).toBeGreaterThanOrEqual(20_000);
    expect(stage.target.proc.stderr).not.toMatch(/Timeout before authentication/);
  }, 90_000);
});
