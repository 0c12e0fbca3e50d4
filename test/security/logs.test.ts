/**
 * Attack: read the logs (shipped to a log service, readable by more people than the key file).
 * The daemon's whole output at the most verbose level, through a full registration, a refused
 * stranger on the allocated port, a pairing with traffic, failed codes, session use and admin
 * API key use, holds no TOTP secret, code, cookie, session token or API key. The same for the
 * real taas-agent's output through a pool of registrations and a pairing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { totpCode } from '../../src/auth/totp.js';
import type { AgentFile } from '../../src/protocol/agent-file.js';
import { closeServer, closed, connect, listen, pollUntil, readExactly, writeFlushed } from '../helpers/net.js';
import { base32Decode } from './base32.js';
import { ROOT, TestDaemon, portOf } from './daemon.js';
import { stripPairingSignal } from '../helpers/signal.js';

describe('logs never hold a credential', () => {
  let d: TestDaemon;
  let agent: AgentFile;
  const sockets: net.Socket[] = [];
  const open = async (port: number) => {
    const s = await connect(port);
    s.on('error', () => {});
    sockets.push(s);
    return s;
  };

  beforeAll(async () => {
    d = TestDaemon.create({ logLevel: 'trace' });
    await d.start();
    agent = await d.createEntry(['logged']);
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await d?.dispose();
  });

  it('through registration, refusals, pairing, sessions and admin use', async () => {
    const secrets: string[] = [];
    const raw = base32Decode(agent.secret);
    secrets.push(agent.secret, agent.secret.toLowerCase(), raw.toString('hex'), raw.toString('base64'));

    // Failed codes first (they are credentials too: a near miss tells a lot).
    const wrong = '918273' === totpCode(agent.secret) ? '918274' : '918273';
    expect((await d.register(agent, 'logged', wrong)).status).toBe(401);
    secrets.push(wrong);

    const code = totpCode(agent.secret);
    const reg = await d.register(agent, 'logged', code);
    expect(reg.status).toBe(200);
    const cookie = reg.headers['taas-cookie'] as string;
    const session = reg.headers['taas-session'] as string;
    secrets.push(code, cookie, session);

    // A stranger presents a cookie of its own on the allocated port.
    const forged = 'Zm9yZ2VkLWNvb2tpZS12YWx1ZQ';
    secrets.push(forged);
    const stranger = await open(portOf(reg.body));
    stranger.write(`TAAS-Cookie ${forged}\r\n`);
    await closed(stranger, 5000);

    // The genuine responder, a mobile client, traffic both ways, then the end of the pairing.
    const responder = await open(portOf(reg.body));
    stripPairingSignal(responder); // as the agent does
    await writeFlushed(responder, `TAAS-Cookie ${cookie}\r\n`);
    await pollUntil(async () => JSON.stringify((await d.admin('/api/live')).body).includes('"idle":1'), 5000);
    const redirect = await d.request('GET', '/secret-path?token=abc', { host: 'logged.localhost' });
    expect(redirect.status).toBe(307);
    const client = await open(Number(new URL(redirect.headers.location as string).port));
    await writeFlushed(client, 'ping');
    expect((await readExactly(responder, 4, 5000)).toString()).toBe('ping');
    client.end();
    responder.end();
    await closed(responder, 5000);

    // Further registrations and the pairings list with the session token.
    const again = await d.registerWithSession(agent, 'logged', session);
    expect(again.status).toBe(200);
    secrets.push(again.headers['taas-cookie'] as string, again.headers['taas-session'] as string);
    const pairings = await d.request('GET', '/pairings/logged', { authorization: `TAAS-Session username="${agent.id}", token="${session}"` });
    expect(pairings.status).toBe(200);

    // The admin API, with the management key and with a wrong one.
    const adminKey = fs.readFileSync(path.join(d.dataDir, 'admin.key'), 'utf8').trim();
    secrets.push(adminKey);
    expect((await d.admin('/api/entries')).status).toBe(200);
    const badKey = adminKey.slice(0, -6) + 'XXXXXX';
    secrets.push(badKey);
    const res = await fetch(d.adminUrl + '/api/entries', { headers: { 'x-api-key': badKey } });
    expect(res.status).toBe(401);
    await res.text();

    // The pairing has ended and been recorded (its end is logged at debug level and above).
    await pollUntil(async () => ((await d.admin('/api/labels/logged/pairings')).body as unknown[]).length === 1, 5000);
    await d.stop(); // flushes the log
    const out = d.output;
    // The log did record all of it (so the absence below means something).
    expect(out).toMatch(/registration accepted/);
    expect(out).toMatch(/connection to allocated port refused/);
    expect(out.split('\n').length).toBeGreaterThan(10);
    for (const s of secrets) {
      const hit = new RegExp(`(^|[^A-Za-z0-9_-])${s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}($|[^A-Za-z0-9_-])`).exec(out);
      expect(hit ? out.slice(Math.max(0, hit.index - 80), hit.index + 80) : null, `a credential (${s.slice(0, 3)}…) is in the log`).toBeNull();
    }
    expect(out).not.toMatch(/response=/i);
    expect(out).not.toMatch(/TAAS-Session username/i);
  });
});

describe('the agent\'s log never holds a credential either', () => {
  let d: TestDaemon;
  let agentProc: ChildProcess | null = null;
  let target: net.Server;
  const sockets: net.Socket[] = [];
  beforeAll(async () => {
    d = TestDaemon.create({ logLevel: 'trace' });
    await d.start();
    // The hidden server's service: an echo server.
    target = net.createServer((s) => {
      s.on('error', () => {});
      s.pipe(s);
    });
    await listen(target);
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    if (agentProc && agentProc.exitCode === null) {
      const gone = new Promise((r) => agentProc!.once('exit', r));
      agentProc.kill('SIGKILL');
      await gone;
    }
    await closeServer(target);
    await d?.dispose();
  });

  it('through the real taas-agent: registrations with a pool, a pairing, echo', async () => {
    const agent = await d.createEntry(['agented']);
    const file = path.join(d.dir, 'agent.json');
    fs.writeFileSync(file, JSON.stringify(agent), { mode: 0o600 });
    let agentOut = '';
    const port = (target.address() as net.AddressInfo).port;
    agentProc = spawn(path.join(ROOT, 'bin/taas-agent'), ['--config', file, '--target', `127.0.0.1:${port}`, '--pool', '3', '--log-level', 'trace'], { stdio: ['ignore', 'pipe', 'pipe'] });
    agentProc.stdout!.on('data', (c: Buffer) => (agentOut += c.toString()));
    agentProc.stderr!.on('data', (c: Buffer) => (agentOut += c.toString()));
    await pollUntil(async () => JSON.stringify((await d.admin('/api/live')).body).includes('"idle":3'), 15_000, 50);

    const redirect = await d.request('GET', '/', { host: 'agented.localhost' });
    expect(redirect.status).toBe(307);
    const client = await connect(Number(new URL(redirect.headers.location as string).port));
    sockets.push(client);
    await writeFlushed(client, 'echo me');
    expect((await readExactly(client, 7, 10_000)).toString()).toBe('echo me');
    client.end();

    const gone = new Promise((r) => agentProc!.once('exit', r));
    agentProc.kill('SIGTERM');
    await gone;
    await d.stop();
    const raw = base32Decode(agent.secret);
    const secrets = [agent.secret, agent.secret.toLowerCase(), raw.toString('hex'), raw.toString('base64')];
    // The cookies and session tokens went to the agent, not to this test: look for their shapes.
    for (const out of [agentOut, d.output]) {
      expect(out.length).toBeGreaterThan(0);
      for (const s of secrets) expect(out.includes(s)).toBe(false);
      expect(out).not.toMatch(/TAAS-Cookie [A-Za-z0-9_-]{20,}/);
      expect(out).not.toMatch(/v1\.\d{9,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{20,}/); // a session token
      expect(out).not.toMatch(/response="\d+"/);
    }
    expect(agentOut).toMatch(/agented/);
  });
});
