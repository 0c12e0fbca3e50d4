import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { register, type RegisterRequest } from '../../src/agent/registrar-client.js';
import { parseTotpAuthorization } from '../../src/protocol/index.js';
import { freePort } from '../helpers/net.js';
import { certs, FakeRegistrar } from './fixtures.js';

const AUTH = 'TOTP username="agent-test-1", response="123456"';
let registrars: FakeRegistrar[] = [];

async function fake(pem = certs().registrar): Promise<FakeRegistrar> {
  const r = await new FakeRegistrar(pem).start();
  registrars.push(r);
  return r;
}

function req(port: number, over: Partial<RegisterRequest> = {}): RegisterRequest {
  return { target: { host: '127.0.0.1', port, servername: 'registrar.test' }, label: 'demo', authorization: AUTH, ca: certs().registrar.cert, timeoutMs: 5000, ...over };
}

beforeAll(() => void certs());
afterEach(async () => {
  await Promise.all(registrars.map((r) => r.close()));
  registrars = [];
});

describe('register: the HTTP exchange', () => {
  it('PUTs /register/LABEL with the registrar name as Host and TLS server name, and reads a 200', async () => {
    const r = await fake();
    r.script = () => ({ register: true, session: 'v1.2000000000.n.mac', cookie: 'c'.repeat(24) });
    const o = await register(req(r.port));
    expect(o.kind).toBe('ok');
    if (o.kind !== 'ok') return;
    expect(o.endpoint.host).toBe('127.0.0.1');
    expect(o.endpoint.port).toBeGreaterThan(0);
    expect(o.cookie).toBe('c'.repeat(24));
    expect(o.session).toBe('v1.2000000000.n.mac');
    const seen = r.requests[0]!;
    expect(seen).toMatchObject({ method: 'PUT', url: '/register/demo', host: 'registrar.test', servername: 'registrar.test' });
    expect(parseTotpAuthorization(seen.authorization!)).toEqual({ id: 'agent-test-1', token: '123456' });
  });

  it('trusts only the pinned CA: a registrar with another certificate is untrusted and never sees the request', async () => {
    const impostor = await fake(certs().other);
    const o = await register(req(impostor.port));
    expect(o.kind).toBe('untrusted');
    expect(impostor.requests).toHaveLength(0);
  });

  it('checks the certificate against the registrar name, not the address dialled', async () => {
    const r = await fake();
    const o = await register(req(r.port, { target: { host: '127.0.0.1', port: r.port, servername: 'elsewhere.test' } }));
    expect(o.kind).toBe('untrusted');
    expect(r.requests).toHaveLength(0);
  });

  it('follows a 307 to another registrar host:port, with the same Authorization', async () => {
    const second = await fake();
    const first = await fake();
    first.script = () => ({ status: 307, headers: { location: `https://127.0.0.1:${second.port}/register/demo` } });
    const o = await register(req(first.port));
    expect(o.kind).toBe('ok');
    expect(second.requests).toHaveLength(1);
    expect(second.requests[0]).toMatchObject({ host: 'registrar.test', authorization: AUTH, url: '/register/demo' });
  });

  it('gives up after a bounded number of redirects', async () => {
    const r = await fake();
    r.script = () => ({ status: 302, headers: { location: '/register/demo' } });
    const o = await register(req(r.port, { maxHops: 3 }));
    expect(o).toMatchObject({ kind: 'bad-response' });
    expect(r.requests).toHaveLength(4);
  });

  it('refuses to follow a redirect to plain http', async () => {
    const r = await fake();
    r.script = () => ({ status: 307, headers: { location: 'http://127.0.0.1:1/register/demo' } });
    expect((await register(req(r.port))).kind).toBe('bad-response');
  });

  it('reads Retry-After on 429 and 503 (seconds or HTTP-date), null when absent', async () => {
    const r = await fake();
    const answers = [
      { status: 429, headers: { 'retry-after': '7' } },
      { status: 503, headers: { 'retry-after': new Date(Date.now() + 20_000).toUTCString() } },
      { status: 503 },
    ];
    r.script = (_q, n) => answers[n]!;
    expect(await register(req(r.port))).toEqual({ kind: 'retry-after', status: 429, seconds: 7 });
    const d = await register(req(r.port));
    expect(d.kind === 'retry-after' && d.seconds! >= 18 && d.seconds! <= 21).toBe(true);
    expect(await register(req(r.port))).toEqual({ kind: 'retry-after', status: 503, seconds: null });
  });

  it('reports 401 and 404 as refusals with the error message of a JSON body', async () => {
    const r = await fake();
    r.script = (_q, n) =>
      n === 0
        ? { status: 401, headers: { 'www-authenticate': 'TOTP realm="taas"' }, body: JSON.stringify({ errorCode: 'TAAS_AUTH_FAILED', errorMsg: 'unknown ID or wrong code' }) }
        : { status: 404, body: 'not granted\nsecond line' };
    expect(await register(req(r.port))).toEqual({ kind: 'refused', status: 401, reason: 'unknown ID or wrong code' });
    expect(await register(req(r.port))).toEqual({ kind: 'refused', status: 404, reason: 'not granted' });
  });

  it('rejects a 200 whose body is not HOST:PORT', async () => {
    const r = await fake();
    r.script = () => ({ status: 200, body: 'hello' });
    expect((await register(req(r.port))).kind).toBe('bad-response');
  });

  it('drops a cookie that is not a cookie token instead of sending it', async () => {
    const r = await fake();
    r.script = () => ({ register: true, cookie: 'short' });
    const o = await register(req(r.port));
    expect(o.kind === 'ok' && o.cookie).toBe(null);
  });

  it('is unreachable when nothing listens, and times out on a registrar that never answers', async () => {
    expect((await register(req(await freePort()))).kind).toBe('unreachable');
    const slow = await fake();
    slow.hang = true;
    const o = await register(req(slow.port, { timeoutMs: 300 }));
    expect(o).toMatchObject({ kind: 'unreachable' });
  });
});
