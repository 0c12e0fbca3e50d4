/**
 * Every status code of DESIGN.md from the real daemon, asked with curl: the registrar under its
 * own name, mobile clients under LABEL.localhost, and strangers under anything else.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curlStatus } from '../helpers/curl.js';
import { startDaemon, stopAll, type Daemon } from '../helpers/daemon.js';
import { askAsClient } from '../helpers/registrar.js';
import type { AgentFile } from '../../src/protocol/index.js';
import { readAgentFile, registrarArgs, totpHeader } from './util.js';

let daemon: Daemon;
let demo: AgentFile;
let reg: ReturnType<typeof registrarArgs>;

beforeAll(async () => {
  // A low lock-out threshold so that 429 is reached in a few requests.
  daemon = await startDaemon({ lockoutThreshold: 3, lockoutBase: 30 });
  demo = readAgentFile(await daemon.addEntry(['demo']));
  reg = registrarArgs(daemon);
});
afterAll(() => stopAll());

function put(path: string, auth?: string, extra: string[] = []) {
  return curlStatus(reg.url(path), daemon.caFile, [...reg.args, '-X', 'PUT', ...(auth ? ['-H', `Authorization: ${auth}`] : []), ...extra]);
}

function asClient(label: string, path = '/') {
  return askAsClient(daemon, label, { path });
}

/** A code that is not the current one (nor, by construction, equal to it). */
function wrongCode(a: AgentFile): string {
  const right = /response="(\d+)"/.exec(totpHeader(a))![1]!;
  const wrong = String((Number(right) + 1) % 10 ** right.length).padStart(right.length, '0');
  return `TOTP username="${a.id}", response="${wrong}"`;
}

describe('registrar status codes', () => {
  it('200: HOST:PORT as text/plain, a TAAS-Cookie and a TAAS-Session', async () => {
    const r = await put('/register/demo', totpHeader(demo));
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/plain/);
    expect(r.body).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(r.headers['taas-cookie']).toMatch(/^[A-Za-z0-9_-]{22,}$/);
    expect(r.headers['taas-session']).toMatch(/^v1\./);
    // The session token authenticates the next registration without a code.
    const again = await put('/register/demo', `TAAS-Session username="${demo.id}", token="${r.headers['taas-session']}"`);
    expect(again.status).toBe(200);
  });

  it('401 with WWW-Authenticate when there is no Authorization', async () => {
    const r = await put('/register/demo');
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toBe('TOTP realm="taas"');
    expect(JSON.parse(r.body)).toMatchObject({ errorCode: 'TAAS_AUTH_MISSING' });
  });

  it('400 for a malformed Authorization header, an invalid label, or a body', async () => {
    expect((await put('/register/demo', 'TOTP username=nobody')).status).toBe(400);
    expect((await put('/register/demo', 'Basic Zm9vOmJhcg==')).status).toBe(400);
    expect((await put('/register/Bad_Label', totpHeader(demo, 5))).status).toBe(400);
    const body = await put('/register/demo', `TOTP username="${demo.id}", response="000000"`, ['--data-binary', 'x']);
    expect(body.status).toBe(400);
  });

  it('401 for an unknown ID and for a wrong code', async () => {
    const unknown = await put('/register/demo', 'TOTP username="no-such-id", response="123456"');
    expect(unknown.status).toBe(401);
    const fresh = readAgentFile(await daemon.addEntry(['wrongcode']));
    const wrong = await put('/register/wrongcode', wrongCode(fresh));
    expect(wrong.status).toBe(401);
    expect(JSON.parse(wrong.body)).toMatchObject({ errorCode: 'TAAS_AUTH_FAILED' });
  });

  it('404 for a label not granted to the ID', async () => {
    const a = readAgentFile(await daemon.addEntry(['notmine']));
    const r = await put('/register/demo', totpHeader(a));
    expect(r.status).toBe(404);
    expect(JSON.parse(r.body)).toMatchObject({ errorCode: 'TAAS_LABEL_NOT_GRANTED' });
  });

  it('405 with Allow for another method', async () => {
    const get = await curlStatus(reg.url('/register/demo'), daemon.caFile, reg.args);
    expect(get.status).toBe(405);
    expect(get.headers.allow).toBe('PUT');
    const post = await curlStatus(reg.url('/pairings/demo'), daemon.caFile, [...reg.args, '-X', 'POST']);
    expect(post.status).toBe(405);
    expect(post.headers.allow).toMatch(/GET/);
  });

  it('429 with Retry-After once an ID is locked out, even for the right code', async () => {
    const a = readAgentFile(await daemon.addEntry(['lockme']));
    const codes: number[] = [];
    for (let i = 0; i < 3; i++) codes.push((await put('/register/lockme', `TOTP username="${a.id}", response="00000${i}"`)).status);
    expect(codes.every((c) => c === 401 || c === 429)).toBe(true);
    const r = await put('/register/lockme', totpHeader(a));
    expect(r.status).toBe(429);
    expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
  });

  it('GET /pairings/LABEL with the credential gives a JSON array', async () => {
    const a = readAgentFile(await daemon.addEntry(['pairs']));
    const r = await curlStatus(reg.url('/pairings/pairs'), daemon.caFile, [...reg.args, '-H', `Authorization: ${totpHeader(a)}`]);
    expect(r.status).toBe(200);
    expect(Array.isArray(JSON.parse(r.body))).toBe(true);
  });
});

describe('mobile client and stranger status codes', () => {
  it('503 with Retry-After when the label has no responder', async () => {
    await daemon.addEntry(['quiet']);
    const r = await asClient('quiet', '/x');
    expect(r.status).toBe(503);
    expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
    expect(JSON.parse(r.body)).toMatchObject({ errorCode: 'TAAS_NO_RESPONDER' });
  });

  it('404 for a label no entry has, and for a Host that is neither registrar nor label', async () => {
    expect((await asClient('nobody-here')).status).toBe(404);
    const stranger = await curlStatus(`https://127.0.0.1:${daemon.registrarPort}/`, daemon.caFile, ['-H', 'Host: example.com']);
    expect(stranger.status).toBe(404);
    const none = await curlStatus(`https://127.0.0.1:${daemon.registrarPort}/register/demo`, daemon.caFile, ['-X', 'PUT', '-H', 'Host: registrar.example']);
    expect(none.status).toBe(404);
  });

  it('the daemon is still serving after all of the above', async () => {
    expect(daemon.proc.running).toBe(true);
    const r = await put('/register/demo');
    expect(r.status).toBe(401);
  });
});
