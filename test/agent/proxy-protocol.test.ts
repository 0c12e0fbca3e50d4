/**
 * Issue 13, the client's address end to end: curl (the mobile client, from 127.0.0.5) → the
 * daemon → `taas-agent --proxy-protocol v1|v2` → a real nginx listening with `proxy_protocol`,
 * answering and logging `$proxy_protocol_addr`. The same address is in the pairings record
 * (what the admin page shows) and in the agent's log.
 */
import { describe, expect, it } from 'vitest';
import { curl, curlLabel } from '../helpers/curl.js';
import { startAgent } from '../helpers/daemon.js';
import { pollUntil } from '../helpers/net.js';
import { agentStage, freePortOutsideRange, isListening, startNginx, type Nginx } from '../helpers/programs.js';

const CLIENT_IP = '127.0.0.5';

const stage = agentStage<Nginx>();

/** `client A:P` from nginx's answer. */
function clientOf(body: string): { addr: string; port: number } {
  const m = /^client (\S+):(\d+)$/.exec(body.trim());
  if (!m) throw new Error(`unexpected answer from nginx: ${JSON.stringify(body)}`);
  return { addr: m[1]!, port: Number(m[2]) };
}

async function pairingsOf(label: string): Promise<{ client: string }[]> {
  const r = await stage.daemon.cli(['pairings', label, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { client: string }[];
}

describe('nginx with proxy_protocol behind taas-agent', () => {
  it('--proxy-protocol v2, raw: nginx sees the mobile client, as do the pairings record and the agent log', async () => {
    stage.target = await startNginx();
    const fixed = await freePortOutsideRange();
    const agentFile = await stage.daemon.addEntry(['ppraw'], ['--client-port', `ppraw=${fixed}`]);
    await pollUntil(() => isListening(fixed), 10_000, 20, 'fixed client port open');
    stage.agent = await startAgent(agentFile, `127.0.0.1:${stage.target.port}`, ['--proxy-protocol', 'v2']);
    // Plain HTTP on the label's fixed port: curl from 127.0.0.5, nginx behind the agent.
    const r = await curl(['--interface', CLIENT_IP, `http://127.0.0.1:${fixed}/raw`]);
    expect(r.stderr).toBe('');
    const seen = clientOf(r.stdout.toString());
    expect(seen.addr).toBe(CLIENT_IP);
    // nginx writes its access log line as the request is finalised, which may be just after curl has the answer.
    await pollUntil(() => stage.target!.accessLog().includes(`${CLIENT_IP} ${seen.port} 127.0.0.1 "GET /raw HTTP/1.1"`), 10_000, 20, 'nginx access log line');
    const paired = await stage.agent.waitLog('paired with a mobile client');
    expect(paired.client).toBe(`${CLIENT_IP}:${seen.port}`);
    await stage.agent.waitLog('pairing ended');
    await pollUntil(async () => (await pairingsOf('ppraw')).length === 1);
    expect((await pairingsOf('ppraw'))[0]!.client).toBe(`${CLIENT_IP}:${seen.port}`);
  }, 60_000);

  it('--proxy-protocol v1 with --tls: the agent terminates TLS and puts the v1 line before the plaintext', async () => {
    stage.target = await startNginx();
    const agentFile = await stage.daemon.addEntry(['pptls']);
    stage.agent = await startAgent(agentFile, `127.0.0.1:${stage.target.port}`, ['--tls', '--proxy-protocol', 'v1']);
    const r = await curlLabel('pptls', stage.daemon.registrarPort, stage.daemon.caFile, '/tls', ['--interface', CLIENT_IP]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const seen = clientOf(r.stdout.toString());
    expect(seen.addr).toBe(CLIENT_IP);
    // nginx writes its access log line as the request is finalised, which may be just after curl has the answer.
    await pollUntil(() => stage.target!.accessLog().includes(`${CLIENT_IP} ${seen.port} 127.0.0.1 "GET /tls HTTP/1.1"`), 10_000, 20, 'nginx access log line');
    expect((await stage.agent.waitLog('paired with a mobile client')).client).toBe(`${CLIENT_IP}:${seen.port}`);
  }, 60_000);

  it('without --proxy-protocol the header is stripped: nginx with proxy_protocol refuses what it gets', async () => {
    stage.target = await startNginx();
    const agentFile = await stage.daemon.addEntry(['ppnone']);
    stage.agent = await startAgent(agentFile, `127.0.0.1:${stage.target.port}`, ['--tls']);
    const r = await curlLabel('ppnone', stage.daemon.registrarPort, stage.daemon.caFile, '/none', ['--interface', CLIENT_IP]);
    expect(r.code).not.toBe(0);
    await stage.target.proc.until(() => /broken header/.test(stage.target!.proc.stderr), 'nginx: broken header');
    expect(stage.target.accessLog()).not.toContain('/none');
  }, 60_000);
});
