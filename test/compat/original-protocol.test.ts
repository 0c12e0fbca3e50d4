/**
 * The original protocol end to end against the real daemon (issue 11), both hidden servers
 * played against the same mobile client:
 *
 * - an original-protocol hidden server (test/compat/original.ts): raw registration octets, a
 *   pool built by presenting the same code again after each 200, cookieless responders silent
 *   until data arrives;
 * - our own agent (bin/taas-agent --tls).
 *
 * The mobile client asks for `LABEL.localhost`, gets a 307 that keeps the label's name
 * (`https://LABEL.localhost:q/…`, so the hidden server's certificate is checked against it),
 * follows it, opens a WebSocket, and then a second connection is paired as well.
 */
import http from 'node:http';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type Daemon, startAgent, startDaemon, stopAll } from '../helpers/daemon.js';
import { closeServer, listen } from '../helpers/net.js';
import { readAgentFile } from '../e2e/util.js';
import { selfSigned } from '../agent/fixtures.js';
import {
  OriginalHiddenServer,
  RawConnection,
  askForLabel,
  clearOfStepEnd,
  currentCode,
  endpointOf,
  getOn,
  openLocation,
  originalRegistration,
  webApp,
  websocketEcho,
} from './original.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(stopAll);

/** What a mobile client does: ask, follow the 307, WebSocket; then a second connection. */
async function mobileClient(d: Daemon, label: string, hiddenCa: string): Promise<{ location: string; echo: string; second: string }> {
  const asked = await askForLabel(d.registrarPort, `${label}.localhost`, d.ca, '/live?room=1');
  expect(asked.status, asked.raw).toBe(307);
  expect(asked.body).toBe('');
  const location = asked.headers.location!;
  const q = Number(new URL(location).port);
  // The label's own name with the client port, path and query kept: the original's form.
  expect(location).toBe(`https://${label}.localhost:${q}/live?room=1`);

  const ws = await openLocation(location, hiddenCa); // TLS to the hidden server, checked for LABEL.localhost
  cleanups.push(() => void ws.destroy());
  const { echo } = await websocketEcho(ws, `${label}.localhost:${q}`, '/live?room=1', 'ping from the mobile client');

  const again = await openLocation(location, hiddenCa);
  cleanups.push(() => void again.destroy());
  const second = await getOn(again, `${label}.localhost:${q}`, '/second');
  return { location, echo, second };
}

describe('an original-protocol hidden server (allowCookieless)', () => {
  it('builds a pool of 16 by reusing its code, and serves a WebSocket and a second connection', async () => {
    const d = await startDaemon({ allowCookieless: true });
    const file = readAgentFile(await d.addEntry(['oldhome']));
    // Its own certificate names only oldhome.localhost (what the browser failed on).
    const own = selfSigned('oldhome.localhost', ['oldhome.localhost'], []);
    const hs = await new OriginalHiddenServer(file, 'oldhome', d.registrarPort, file.registrar, own).start();
    cleanups.push(() => hs.close());

    await clearOfStepEnd(5000);
    const t0 = Date.now();
    const answers = await hs.buildPool(16);
    console.log(`original hidden server: pool of 16 registered from one code in ${Date.now() - t0} ms`);
    expect(answers.map((a) => a.status)).toEqual(Array(16).fill(200));
    expect(new Set(answers.map((a) => endpointOf(a.body).port)).size).toBe(16);
    await d.proc.waitLog('registration accepted', 16);
    expect(d.proc.logs('registration accepted').map((l) => l.via)).toEqual(['totp', ...Array(15).fill('reuse')]);

    const { location, echo, second } = await mobileClient(d, 'oldhome', own.cert);
    expect(echo).toBe('echo: ping from the mobile client');
    expect(second).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nhello \/second #\d+$/);
    // Two responders were paired, and neither had said a word before the client did.
    await Promise.all(hs.responders.slice(0, 2).map((r) => r.reached));
    expect(d.proc.logs('ID locked out after failed attempts')).toEqual([]);
    // The old form of Location, the relay's address, fails that certificate check.
    const byAddress = location.replace('oldhome.localhost', '127.0.0.1');
    await expect(openLocation(byAddress, own.cert)).rejects.toThrow(/IP: 127\.0\.0\.1 is not in the cert's list/);
  });

  it('refuses the same code from another address, past the bound, and on a relay without allowCookieless', async () => {
    const d = await startDaemon({ allowCookieless: true, codeReusePerStep: 2 });
    const file = readAgentFile(await d.addEntry(['guarded']));
    await clearOfStepEnd(5000);
    const code = currentCode(file);
    const put = async (localAddress?: string) => {
      const c = await RawConnection.tls(d.registrarPort, 'registrar.localhost', d.ca, localAddress);
      try {
        c.write(originalRegistration(file, 'guarded', `registrar.localhost:${d.registrarPort}`, code));
        return (await c.response()).status;
      } finally {
        c.close();
      }
    };
    expect(await put()).toBe(200);
    expect(await put('127.0.0.2')).toBe(401); // another address bucket: a replay
    expect(await put()).toBe(200);
    expect(await put()).toBe(200);
    expect(await put()).toBe(401); // past codeReusePerStep
    await d.proc.waitLog('registration accepted', 3);
    expect(d.proc.logs('registration accepted').map((l) => l.via)).toEqual(['totp', 'reuse', 'reuse']);

    const strict = await startDaemon();
    const f2 = readAgentFile(await strict.addEntry(['strict']));
    const hs = new OriginalHiddenServer(f2, 'strict', strict.registrarPort);
    cleanups.push(() => hs.close());
    await clearOfStepEnd(5000);
    const c2 = currentCode(f2);
    expect((await hs.register(c2)).status).toBe(200);
    expect((await hs.register(c2)).status).toBe(401);
  });

  it('keeps the client on the label’s name with locationHost while hidden servers are told the address', async () => {
    const d = await startDaemon({
      allowCookieless: true,
      namedRegistrar: 'registrar.taas.example.com',
      namedServers: 'taas.example.com',
      locationHost: '{label}.taas.example.com',
    });
    const file = readAgentFile(await d.addEntry(['named']));
    const hs = await new OriginalHiddenServer(file, 'named', d.registrarPort, 'registrar.taas.example.com').start();
    cleanups.push(() => hs.close());
    await clearOfStepEnd();
    const reg = await hs.register();
    expect(reg.status).toBe(200);
    expect(endpointOf(reg.body).host).toBe('127.0.0.1'); // the connect address is unchanged
    await hs.respond(endpointOf(reg.body));

    const asked = await askForLabel(d.registrarPort, 'named.taas.example.com', d.ca, '/x');
    expect(asked.status).toBe(307);
    const q = Number(new URL(asked.headers.location!).port);
    expect(asked.headers.location).toBe(`https://named.taas.example.com:${q}/x`);
    const s = await openLocation(asked.headers.location!, d.ca, '127.0.0.1'); // as with curl --resolve
    cleanups.push(() => void s.destroy());
    expect(await getOn(s, `named.taas.example.com:${q}`, '/x')).toMatch(/\r\n\r\nhello \/x #1$/);
  });
});

describe('our own agent', () => {
  it('serves the same mobile client: the 307 keeps the label’s name, a WebSocket, a second connection', async () => {
    const app = webApp();
    const port = await listen(app as unknown as http.Server);
    cleanups.push(async () => {
      app.closeAllConnections();
      await closeServer(app);
    });
    const d = await startDaemon();
    const file = await d.addEntry(['newhome']);
    await startAgent(file, `127.0.0.1:${port}`, ['--tls'], { pool: 2 });
    const { echo, second } = await mobileClient(d, 'newhome', d.ca);
    expect(echo).toBe('echo: ping from the mobile client');
    expect(second).toMatch(/\r\n\r\nhello \/second #\d+$/);
  });
});
