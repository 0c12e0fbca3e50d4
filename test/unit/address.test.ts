/**
 * The address rules every part shares: brackets around IPv6 hosts, the one normal form of a
 * socket address, the bucket per-address limits count by (and the connection counter that uses
 * it, on real loopback sockets), the Retry-After value and the JSON error body.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { addressBucket, bracketHost, errorBody, formatEndpoint, formatRetryAfter, normaliseAddress } from '../../src/protocol/index.js';
import { ConnLimit } from '../../src/relay/conn-limit.js';
import { closeServer, listen, waitFor } from '../helpers/net.js';

describe('bracketHost and formatEndpoint', () => {
  it('brackets any host with a colon, once, and leaves names and IPv4 alone', () => {
    expect(bracketHost('::1')).toBe('[::1]');
    expect(bracketHost('2001:db8::1')).toBe('[2001:db8::1]');
    expect(bracketHost('fe80::1%eth0')).toBe('[fe80::1%eth0]');
    expect(bracketHost('[::1]')).toBe('[::1]');
    expect(bracketHost('127.0.0.1')).toBe('127.0.0.1');
    expect(bracketHost('relay.example.com')).toBe('relay.example.com');
    expect(formatEndpoint('::', 8893)).toBe('[::]:8893');
    expect(formatEndpoint('registrar.localhost', 8443)).toBe('registrar.localhost:8443');
  });
});

describe('normaliseAddress and addressBucket', () => {
  it('unwraps IPv4-mapped IPv6 and lowercases; nothing gives the empty string', () => {
    expect(normaliseAddress('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(normaliseAddress('::FFFF:10.1.2.3')).toBe('10.1.2.3');
    expect(normaliseAddress('2001:DB8::1')).toBe('2001:db8::1');
    expect(normaliseAddress('fe80::1%eth0')).toBe('fe80::1%eth0');
    expect(normaliseAddress('::ffff:1.2.3')).toBe('::ffff:1.2.3');
    expect(normaliseAddress(undefined)).toBe('');
  });

  it('buckets a normalised address as it buckets the raw one', () => {
    for (const a of ['::ffff:203.0.113.9', '203.0.113.9', '2001:DB8:1:2::5%eth1', '::1', 'fe80::1:2:3:4', '', 'junk'])
      expect(addressBucket(normaliseAddress(a))).toBe(addressBucket(a));
    expect(addressBucket(undefined)).toBe('');
  });
});

describe('ConnLimit', () => {
  const servers: net.Server[] = [];
  const sockets: net.Socket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await Promise.all(servers.splice(0).map(closeServer));
  });

  /** The server side of a connection from 127.0.0.1 to a listener on `host`. */
  async function accepted(host: string): Promise<net.Socket> {
    const server = net.createServer();
    servers.push(server);
    const port = await listen(server, 0, host);
    const got = waitFor<net.Socket>(server, 'connection');
    sockets.push(net.connect(port, '127.0.0.1'));
    const s = await got;
    sockets.push(s);
    return s;
  }

  it('counts 127.0.0.1 and ::ffff:127.0.0.1 as one address, and gives the count back on close', async () => {
    const limit = new ConnLimit(() => 1);
    const plain = await accepted('127.0.0.1');
    const mapped = await accepted('::');
    expect(plain.remoteAddress).toBe('127.0.0.1');
    expect(mapped.remoteAddress).toBe('::ffff:127.0.0.1');
    expect(limit.admit(plain)).toBe(true);
    expect(limit.admit(mapped)).toBe(false);
    plain.destroy();
    await waitFor(plain, 'close');
    expect(limit.addresses).toBe(0);
    expect(limit.admit(mapped)).toBe(true);
  });

  it('counts an IPv6 /64 as one address (the failure limit\'s bucket rule)', async () => {
    const server = net.createServer();
    servers.push(server);
    const port = await listen(server, 0, '::1');
    const accept = async (): Promise<net.Socket> => {
      const got = waitFor<net.Socket>(server, 'connection');
      sockets.push(net.connect(port, '::1'));
      const s = await got;
      sockets.push(s);
      return s;
    };
    const limit = new ConnLimit(() => 1);
    expect(limit.admit(await accept())).toBe(true);
    const second = await accept();
    expect(limit.admit(second)).toBe(false);
    // ::2 lies in ::1's /64: giving back one of its connections frees the bucket ::1 counts in.
    limit.release('::2');
    expect(limit.admit(second)).toBe(true);
  });

  it('keeps a handed-over connection counted until release, under its normalised address', async () => {
    const limit = new ConnLimit(() => 1);
    const mapped = await accepted('::');
    expect(limit.admit(mapped)).toBe(true);
    expect(limit.keep(mapped)).toBe('127.0.0.1');
    mapped.destroy();
    await waitFor(mapped, 'close');
    expect(limit.addresses).toBe(1);
    const next = await accepted('127.0.0.1');
    expect(limit.admit(next)).toBe(false);
    limit.release('127.0.0.1');
    expect(limit.admit(next)).toBe(true);
  });
});

describe('Retry-After and the error body', () => {
  it('sends whole seconds rounded up, never below 1', () => {
    expect(formatRetryAfter(30)).toBe('30');
    expect(formatRetryAfter(0.2)).toBe('1');
    expect(formatRetryAfter(2.01)).toBe('3');
    expect(formatRetryAfter(0)).toBe('1');
    expect(formatRetryAfter(-5)).toBe('1');
  });

  it('writes {"errorCode", "errorMsg"} and nothing else', () => {
    expect(JSON.parse(errorBody('TAAS_NOT_FOUND', 'no route GET /x'))).toEqual({ errorCode: 'TAAS_NOT_FOUND', errorMsg: 'no route GET /x' });
  });
});
