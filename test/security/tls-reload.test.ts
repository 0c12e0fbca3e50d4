/**
 * Replacing a leaked or expiring certificate must not cost the hidden servers their pairings:
 * `make-cert --force` writes a new key and certificate, SIGHUP makes the daemon use them for new
 * handshakes, and a pairing established before carries on, octets both ways.
 */
import type net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closed, connect, pollUntil, readExactly, writeFlushed } from '../helpers/net.js';
import { TestDaemon, portOf } from './daemon.js';
import { stripPairingSignal } from '../helpers/signal.js';

/** SHA-256 fingerprint of the certificate the registrar presents for `servername`. */
function fingerprint(port: number, servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false }, () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.destroy();
    });
    s.once('error', reject);
  });
}

describe('certificate reload on SIGHUP', () => {
  let d: TestDaemon;
  const sockets: net.Socket[] = [];
  beforeAll(async () => {
    d = TestDaemon.create();
    await d.start();
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await d?.dispose();
  });

  it('new handshakes get the new certificate; an established pairing carries on', async () => {
    const agent = await d.createEntry(['steady']);
    const reg = await d.register(agent, 'steady');
    const responder = await connect(portOf(reg.body));
    sockets.push(responder);
    stripPairingSignal(responder); // as the agent does
    await writeFlushed(responder, `TAAS-Cookie ${reg.headers['taas-cookie']}\r\n`);
    await pollUntil(async () => JSON.stringify((await d.admin('/api/live')).body).includes('"idle":1'), 5000);
    const redirect = await d.request('GET', '/', { host: 'steady.localhost' });
    const client = await connect(Number(new URL(redirect.headers.location as string).port));
    sockets.push(client);
    await writeFlushed(client, 'before');
    expect((await readExactly(responder, 6, 5000)).toString()).toBe('before');

    const old = await fingerprint(d.port, 'registrar.localhost');
    const oldLabel = await fingerprint(d.port, 'steady.localhost');
    const made = await d.cli(['make-cert', '--force']);
    expect(made.code, made.stderr).toBe(0);
    process.kill(d.pid, 'SIGHUP');
    await d.untilOutput(() => d.output.includes('configuration reloaded'), 'the reload logged', 10_000);
    const now = await fingerprint(d.port, 'registrar.localhost');
    expect(now).not.toBe(old);
    // A label's name is served a leaf of the new certificate too.
    expect(await fingerprint(d.port, 'steady.localhost')).not.toBe(oldLabel);

    // The pairing made under the old certificate is untouched.
    await writeFlushed(client, 'after');
    expect((await readExactly(responder, 5, 5000)).toString()).toBe('after');
    await writeFlushed(responder, 'back');
    expect((await readExactly(client, 4, 5000)).toString()).toBe('back');
    client.end();
    await closed(responder, 5000);
  });
});
