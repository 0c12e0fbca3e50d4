/**
 * Hostile request lines and headers against the running daemon: Host spellings, path tricks
 * (`..`, `%2F`, NUL, overlong), duplicate and folded Authorization, and attempts to inject
 * CRLF or markup into the 307's Location. Nothing is decoded into something surprising and
 * nothing from the request comes back unescaped.
 */
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, pollUntil, writeFlushed } from '../helpers/net.js';
import { TestDaemon, portOf } from './daemon.js';

const AUTH = 'Authorization: TOTP username="nobody", response="123456"\r\n';

describe('hostile input', () => {
  let d: TestDaemon;
  let responder: net.Socket | null = null;

  beforeAll(async () => {
    d = TestDaemon.create();
    await d.start();
    const agent = await d.createEntry(['demo']);
    // A genuine responder, so that client requests for demo get a 307 whose Location we inspect.
    const reg = await d.register(agent, 'demo');
    responder = await connect(portOf(reg.body));
    responder.on('error', () => {});
    await writeFlushed(responder, `TAAS-Cookie ${reg.headers['taas-cookie']}\r\n`);
    await pollUntil(async () => JSON.stringify((await d.admin('/api/live')).body).includes('"idle":1'), 5000);
  });
  afterAll(async () => {
    responder?.destroy();
    await d?.dispose();
  });

  const req = (line: string, host: string, extra = '') => d.rawRequest(`${line}\r\nHost: ${host}\r\n${extra}Connection: close\r\n\r\n`);

  it('normalises Host: case, trailing dot, port; refuses what is not a host', async () => {
    expect((await req('PUT /register/demo HTTP/1.1', 'REGISTRAR.LocalHost.:8443')).status).toBe(401);
    expect((await req('GET / HTTP/1.1', 'DEMO.LOCALHOST.')).status).toBe(307);
    expect((await req('GET / HTTP/1.1', 'demo.localhost:1')).status).toBe(307);
    for (const h of ['[::1]', '[::1]:8443', 'demo..localhost', 'demo.localhost:x', 'de_mo.localhost', 'registrar.localhost@evil', 'evil.example', 'a.demo.localhost', '-demo.localhost', '127.0.0.1']) {
      const r = await req('GET / HTTP/1.1', h);
      expect([r.status, h]).toEqual([404, h]);
    }
  });

  it('does not decode paths: .., %2F, encoded letters, NUL, overlong', async () => {
    const cases: [string, number][] = [
      ['PUT /register/../x HTTP/1.1', 404],
      ['PUT /register/..%2Fx HTTP/1.1', 400],
      ['PUT /register/%2E%2E HTTP/1.1', 400],
      ['PUT /register/de%6Do HTTP/1.1', 400],
      ['PUT /register/demo%00 HTTP/1.1', 400],
      ['PUT /register/demo/extra HTTP/1.1', 404],
      ['PUT //register/demo HTTP/1.1', 404],
      [`PUT /register/${'a'.repeat(64)} HTTP/1.1`, 400],
      [`PUT /register/demo?${'q'.repeat(4000)} HTTP/1.1`, 404],
      ['PUT /REGISTER/demo HTTP/1.1', 404],
    ];
    for (const [line, status] of cases) {
      const r = await req(line, 'registrar.localhost', AUTH);
      expect([line.slice(0, 40), r.status]).toEqual([line.slice(0, 40), status]);
    }
    // A raw NUL in the request line is refused by the HTTP parser before any route runs.
    const nul = await d.rawRequest('PUT /register/de\0mo HTTP/1.1\r\nHost: registrar.localhost\r\n\r\n');
    expect(nul.status).toBe(400);
  });

  it('refuses a duplicate or folded Authorization header (no guessing which one counts)', async () => {
    const dup = await req('PUT /register/demo HTTP/1.1', 'registrar.localhost', AUTH + AUTH);
    expect(dup.status).toBe(400);
    expect(dup.text).toContain('TAAS_AUTH_MALFORMED');
    const folded = await req('PUT /register/demo HTTP/1.1', 'registrar.localhost', 'Authorization: TOTP username="nobody",\r\n response="123456"\r\n');
    expect(folded.status).toBe(400);
    // An Authorization smuggled into another header's value is just text there.
    const inValue = await req('PUT /register/demo HTTP/1.1', 'registrar.localhost', 'X-A: a\\r\\nAuthorization: TOTP username="x", response="123456"\r\n');
    expect(inValue.status).toBe(401);
    expect(inValue.text).toContain('TAAS_AUTH_MISSING');
  });

  it('escapes everything from the request that reaches Location', async () => {
    const hostile = [
      '/%0d%0aSet-Cookie:%20x=1',
      '/a"><script>alert(1)</script>',
      "/p?q='x'&r=<b>",
      '/\u00e9t\u00e9',
      '/a\\b|c^d`e{f}',
      '//evil.example/',
      'https://evil.example/x',
      '@evil.example/',
      '/\\evil.example/',
    ];
    let redirected = 0;
    for (const p of hostile) {
      const r = await d.rawRequest(Buffer.from(`GET ${p} HTTP/1.1\r\nHost: demo.localhost\r\nConnection: close\r\n\r\n`, 'utf8'));
      const head = r.text.split('\r\n\r\n')[0]!;
      const location = /\r\nlocation: ([^\r\n]*)/i.exec(head)?.[1];
      if (r.status !== 307) {
        // The HTTP parser may refuse some bytes outright; that is fine, as long as nothing is reflected.
        expect([p, r.status]).toEqual([p, 400]);
        continue;
      }
      expect(location).toBeDefined();
      redirected++;
      // Only URI characters, no quotes, angle brackets, spaces, backslashes or raw non-ASCII.
      // The embedded names: Location keeps the label's name (demo.localhost, loopback).
      expect(location).toMatch(/^https:\/\/demo\.localhost:\d+\/[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*$/);
      expect(location).not.toMatch(/[<>"\\\s]/);
      // The path stays a path on the relay: `//evil.example/` does not become a host.
      expect(new URL(location!).host).toMatch(/^demo\.localhost:\d+$/);
      expect(head).not.toMatch(/\r\nset-cookie:/i);
    }
    // Most of them do reach Location (Node's parser is lenient with most of these bytes).
    expect(redirected).toBeGreaterThanOrEqual(5);
  });

  it('answers unknown methods with 405 and Allow, unknown paths with 404, all as JSON error bodies', async () => {
    const del = await req('DELETE /register/demo HTTP/1.1', 'registrar.localhost');
    expect(del.status).toBe(405);
    expect(del.text).toMatch(/\r\nallow: PUT\r\n/i);
    const nf = await req('GET /etc/passwd HTTP/1.1', 'registrar.localhost');
    expect(nf.status).toBe(404);
    expect(JSON.parse(nf.text.split('\r\n\r\n')[1]!)).toEqual({ errorCode: 'TAAS_NOT_FOUND', errorMsg: expect.any(String) });
    expect(nf.text).not.toContain('passwd');
  });
});
