/**
 * Every request form of the original protocol's hidden servers, as exact octets on raw TLS
 * sockets against the real daemon (issue 11): an empty body however framed (none, Content-Length
 * 0, chunked with only the last chunk) is a registration; a non-empty one is refused; Host with
 * and without its port, keep-alive and close, HTTP/1.0 and 1.1 are answered as the original
 * (a Node.js HTTP server) answered them: `HTTP/1.1 200 OK`, `Content-Type: text/plain`,
 * `HOST:PORT`, the connection kept or closed as the request asked.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Daemon, startDaemon, stopAll } from '../helpers/daemon.js';
import { readAgentFile } from '../e2e/util.js';
import type { AgentFile } from '../../src/protocol/index.js';
import { RawConnection, clearOfStepEnd, currentCode, endpointOf, originalRegistration } from './original.js';

let daemon: Daemon;
let file: AgentFile;
beforeAll(async () => {
  // headersTimeout 1 s: the request timeout (max(headersTimeout + 1 s, 5 s)) is 5 s.
  daemon = await startDaemon({ allowCookieless: true, headersTimeout: 1 });
  file = readAgentFile(await daemon.addEntry(['framed']));
});
afterAll(stopAll);

const open = () => RawConnection.tls(daemon.registrarPort, 'registrar.localhost', daemon.ca);
const auth = () => `Authorization: TOTP username="${file.id}", response="${currentCode(file)}"\r\n`;
const hostWithPort = () => `Host: registrar.localhost:${daemon.registrarPort}\r\n`;

function expectEndpoint(r: { raw: string; status: number; statusLine: string; headers: Record<string, string>; body: string }): void {
  expect(r.statusLine, r.raw).toBe('HTTP/1.1 200 OK');
  expect(r.headers['content-type']).toBe('text/plain');
  expect(r.headers['transfer-encoding']).toBeUndefined();
  expect(endpointOf(r.body).host).toBe('127.0.0.1');
}

describe('registration framing (raw octets)', () => {
  it('the original hidden server: chunked with only the last chunk, Host with port, keep-alive; the connection serves the next one', async () => {
    await clearOfStepEnd();
    const c = await open();
    try {
      c.write(originalRegistration(file, 'framed', `registrar.localhost:${daemon.registrarPort}`));
      expectEndpoint(await c.response());
      expect(c.ended).toBe(false);
      // The same code again on the same connection: the original's way of growing a pool.
      c.write(originalRegistration(file, 'framed', `registrar.localhost:${daemon.registrarPort}`));
      expectEndpoint(await c.response());
    } finally {
      c.close();
    }
  });

  it('Content-Length: 0, Host without port, Connection: close: answered, then closed', async () => {
    await clearOfStepEnd();
    const c = await open();
    c.write(`PUT /register/framed HTTP/1.1\r\nHost: registrar.localhost\r\n${auth()}Content-Length: 0\r\nConnection: close\r\n\r\n`);
    const r = await c.response();
    expectEndpoint(r);
    expect(r.headers.connection).toBe('close');
    await c.closed;
  });

  it('HTTP/1.0 with no framing at all: answered with a length, then closed', async () => {
    await clearOfStepEnd();
    const c = await open();
    c.write(`PUT /register/framed HTTP/1.0\r\nHost: registrar.localhost\r\n${auth()}\r\n`);
    const r = await c.response();
    expectEndpoint(r);
    expect(Number(r.headers['content-length'])).toBe(Buffer.byteLength(r.body));
    await c.closed;
  });

  it('HTTP/1.1 with no length and no Transfer-Encoding (an empty body), Host with port', async () => {
    await clearOfStepEnd();
    const c = await open();
    try {
      c.write(`PUT /register/framed HTTP/1.1\r\n${hostWithPort()}${auth()}\r\n`);
      expectEndpoint(await c.response());
    } finally {
      c.close();
    }
  });

  it('a chunked body split across writes, ending in only the last chunk, is still empty', async () => {
    await clearOfStepEnd();
    const c = await open();
    try {
      c.write(`PUT /register/framed HTTP/1.1\r\n${hostWithPort()}${auth()}Transfer-Encoding: chunked\r\n\r\n`);
      await new Promise((r) => setImmediate(r));
      c.write('0\r\n\r\n');
      expectEndpoint(await c.response());
    } finally {
      c.close();
    }
  });

  it('refuses a non-empty body, chunked or with a length, with 400 and the reason', async () => {
    for (const framing of ['Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n', 'Content-Length: 5\r\n\r\nhello']) {
      const c = await open();
      try {
        c.write(`PUT /register/framed HTTP/1.1\r\n${hostWithPort()}${auth()}${framing}`);
        const r = await c.response();
        expect(r.status, r.raw).toBe(400);
        expect(JSON.parse(r.body)).toEqual({ errorCode: 'TAAS_BAD_REQUEST', errorMsg: 'a registration has no body' });
      } finally {
        c.close();
      }
    }
  });

  it('a chunked body that never ends holds nothing: the request timeout closes it', async () => {
    const c = await open();
    const t0 = Date.now();
    c.write(`PUT /register/framed HTTP/1.1\r\n${hostWithPort()}${auth()}Transfer-Encoding: chunked\r\n\r\n`);
    await c.closed;
    // requestTimeout: max(headersTimeout + 1 s, 5 s), checked every 250 ms.
    expect(Date.now() - t0).toBeLessThan(7_000);
  });

  it('answers the original error forms: no Authorization → 401 with the challenge, other method → 405 with Allow', async () => {
    const c = await open();
    try {
      c.write(`PUT /register/framed HTTP/1.1\r\n${hostWithPort()}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`);
      const r = await c.response();
      expect(r.status).toBe(401);
      expect(r.headers['www-authenticate']).toBe('TOTP realm="taas"');
      c.write(`POST /register/framed HTTP/1.1\r\n${hostWithPort()}${auth()}Content-Length: 0\r\n\r\n`);
      const m = await c.response();
      expect(m.status).toBe(405);
      expect(m.headers.allow).toBe('PUT');
    } finally {
      c.close();
    }
  });
});

describe('mobile client request forms (raw octets)', () => {
  it('Host with and without port, HTTP/1.1 keep-alive and HTTP/1.0: each a 307 to the label’s name, empty body', async () => {
    await clearOfStepEnd();
    const reg = await open();
    reg.write(originalRegistration(file, 'framed', `registrar.localhost:${daemon.registrarPort}`));
    expectEndpoint(await reg.response()); // a pending registration: the label can be served
    reg.close();

    const c = await RawConnection.tls(daemon.registrarPort, 'framed.localhost', daemon.ca);
    try {
      c.write(`GET /a?b=1 HTTP/1.1\r\nHost: framed.localhost:${daemon.registrarPort}\r\nConnection: keep-alive\r\n\r\n`);
      const first = await c.response();
      expect(first.statusLine).toBe('HTTP/1.1 307 Temporary Redirect');
      expect(first.headers.location).toMatch(/^https:\/\/framed\.localhost:\d+\/a\?b=1$/);
      expect(first.body).toBe('');
      c.write('GET / HTTP/1.1\r\nHost: framed.localhost\r\n\r\n');
      const second = await c.response();
      expect(second.status).toBe(307);
      expect(new URL(second.headers.location!).port).toBe(new URL(first.headers.location!).port);
    } finally {
      c.close();
    }

    const old = await RawConnection.tls(daemon.registrarPort, 'framed.localhost', daemon.ca);
    old.write('GET /old HTTP/1.0\r\nHost: framed.localhost\r\n\r\n');
    const r = await old.response();
    expect(r.status).toBe(307);
    expect(r.headers.location).toMatch(/^https:\/\/framed\.localhost:\d+\/old$/);
    await old.closed;
  });
});
