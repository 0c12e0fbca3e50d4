/**
 * The registrar's certificate from a real ACME CA (pebble), through the real daemon: obtained
 * by TLS-ALPN-01 on the registrar's own listener, its names following the entries, verified by
 * curl trusting only pebble's issuing root; renewed and swapped without a restart; and, with
 * Redis, a second node that picks up the stored certificate instead of ordering again.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { curl } from '../helpers/curl.js';
import { metrics } from '../ops/util.js';
import { startAgent, startDaemon, stopAll, tempDir, type Daemon } from '../helpers/daemon.js';
import { freePort, LOOPBACK } from '../helpers/net.js';
import { startPebble, type Pebble } from '../helpers/pebble.js';
import { startRedis, type RedisProcess } from '../helpers/redis.js';
import { SecretBox } from '../../src/store/secret-box.js';

const REGISTRAR = 'registrar.acme.test';
const SERVERS = 'acme.test';

/** curl trusting only pebble's issuing root, the name pinned to loopback: exit code and HTTP status. */
async function curlVerified(name: string, port: number, rootFile: string): Promise<{ code: number | null; status: string; stderr: string }> {
  const r = await curl(['--cacert', rootFile, '--resolve', `${name}:${port}:${LOOPBACK}`, '-o', '/dev/null', '-w', '%{http_code}', `https://${name}:${port}/`]);
  return { code: r.code, status: r.stdout.toString(), stderr: r.stderr };
}

/** The certificate a TLS client is given for `name` (its serial and names). */
function servedCert(port: number, name: string): Promise<crypto.X509Certificate> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: LOOPBACK, port, servername: name, rejectUnauthorized: false }, () => {
      resolve(s.getPeerX509Certificate()!);
      s.destroy();
    });
    s.on('error', reject);
  });
}

function acmeConfig(pebble: Pebble, port: number, acme: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    taasPort: port,
    namedRegistrar: REGISTRAR,
    namedServers: SERVERS,
    acme: { directoryUrl: pebble.directoryUrl, caFile: pebble.directoryCaFile, email: 'ops@acme.test', termsOfServiceAgreed: true, ...acme },
  };
}

/** pebble's issuing root is no public root: agent files get it through acme.rootFile. */
const withRoot = (rootFile: string, acme: Record<string, unknown> = {}) => ({ rootFile, ...acme });

describe('registrar certificate from pebble (embedded store)', () => {
  let pebble: Pebble;
  let port: number;
  let httpPort: number;
  let root: string;
  beforeAll(async () => {
    [port, httpPort] = await Promise.all([freePort(), freePort()]);
    // An hour's validity: renewal can be made due seconds after issuance by renewBeforeDays.
    pebble = await startPebble({ tlsPort: port, httpPort, certificateValidity: 3600 });
    root = await pebble.issuingRootFile();
  }, 30_000);
  afterEach(() => stopAll());
  afterAll(() => pebble?.stop());

  it('obtains it by TLS-ALPN-01, curl verifies the registrar name, and a new label is added to it', async () => {
    const d: Daemon = await startDaemon(acmeConfig(pebble, port, withRoot(root)));
    await d.proc.waitLog('ACME certificate obtained', 1, 60_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${pebble.logs()}`);
    });
    const r = await curlVerified(REGISTRAR, port, root);
    expect(r.code, r.stderr).toBe(0);
    expect(r.status).toBe('404'); // GET / on the registrar: verified TLS, then the registrar's own answer
    // The self-signed generated certificate is not what is served any more.
    expect((await servedCert(port, REGISTRAR)).issuer).not.toContain('taas-server relay CA');

    // A label added to the entries: the certificate follows, without a restart.
    await d.addEntry(['web']);
    const second = await d.proc.waitLog('ACME certificate obtained', 2, 60_000);
    expect(second.names).toEqual([REGISTRAR, `web.${SERVERS}`]);
    const w = await curlVerified(`web.${SERVERS}`, port, root);
    expect(w.code, w.stderr).toBe(0);
    expect(w.status).toBe('503'); // no hidden server registered: the relay's answer, over a verified certificate
    expect(d.proc.logs('taas-server ready')).toHaveLength(1);

    // An agent file written now pins the ACME certificate's root too: the agent registers over it.
    const agentFile = await d.addEntry(['app']);
    expect(JSON.parse(fs.readFileSync(agentFile, 'utf8')).ca).toContain(fs.readFileSync(root, 'utf8').trim().split('\n')[1]);
    await startAgent(agentFile, `${LOOPBACK}:9`, [], { pool: 1 });
  }, 120_000);

  it('renews before expiry and swaps the certificate without a restart', async () => {
    // Due 3595 s before the end of an hour's validity: five seconds after issuance.
    const d = await startDaemon(acmeConfig(pebble, port, { renewBeforeDays: 3595 / 86400, checkInterval: 2 }));
    await d.proc.waitLog('ACME certificate obtained', 1, 60_000);
    const before = await servedCert(port, REGISTRAR);
    const renewed = await d.proc.waitLog('ACME certificate obtained', 2, 60_000);
    expect(d.proc.logs('ACME order started')[1]?.reason).toBe('renewal due');
    // The expiry an operator alerts on follows the renewal.
    expect((await metrics(d)).get('taas_acme_certificate_not_after_seconds')).toBe(Date.parse(String(renewed.notAfter)) / 1000);
    const after = await servedCert(port, REGISTRAR);
    expect(after.serialNumber).not.toBe(before.serialNumber);
    expect(new Date(after.validTo).getTime()).toBe(new Date(String(renewed.notAfter)).getTime());
    const r = await curlVerified(REGISTRAR, port, root);
    expect(r.code, r.stderr).toBe(0);
    expect(d.proc.logs('taas-server ready')).toHaveLength(1); // the same process throughout
  }, 120_000);

  it('proves the names by HTTP-01 on its own plain-HTTP listener when configured', async () => {
    const d = await startDaemon(acmeConfig(pebble, port, { challenge: 'http-01', http01Port: httpPort }));
    await d.proc.waitLog('ACME HTTP-01 listener ready', 1, 30_000);
    await d.proc.waitLog('ACME certificate obtained', 1, 60_000);
    expect(d.proc.logs('ACME order started')[0]?.challenge).toBe('http-01');
    const r = await curlVerified(REGISTRAR, port, root);
    expect(r.code, r.stderr).toBe(0);
  }, 120_000);

  it('gets a wildcard for the labels through the DNS-01 hook (pebble-challtestsrv as the DNS provider)', async () => {
    const hook = path.join(tempDir(), 'dns01-hook.sh');
    // The operator's hook, here talking to challtestsrv's management API instead of a DNS provider.
    fs.writeFileSync(
      hook,
      `#!/bin/sh
set -e
case "$1" in
  add) curl -sSf -X POST -d "{\\"host\\":\\"$2.\\",\\"value\\":\\"$3\\"}" ${pebble.challtestUrl}/set-txt ;;
  remove) curl -sSf -X POST -d "{\\"host\\":\\"$2.\\"}" ${pebble.challtestUrl}/clear-txt ;;
  *) echo "unknown action $1" >&2; exit 2 ;;
esac
`,
      { mode: 0o700 },
    );
    const d = await startDaemon(acmeConfig(pebble, port, { challenge: 'dns-01', dns01Hook: hook, wildcard: true }));
    const got = await d.proc.waitLog('ACME certificate obtained', 1, 60_000);
    expect(got.names).toEqual([REGISTRAR, `*.${SERVERS}`]);
    const r = await curlVerified(`anything.${SERVERS}`, port, root);
    expect(r.code, r.stderr).toBe(0);
    expect(r.status).toBe('404'); // not a label: the relay's answer, over the verified wildcard
  }, 120_000);
});

describe('registrar certificate shared between nodes (Redis)', () => {
  let pebble: Pebble;
  let redis: RedisProcess;
  let portA: number;
  let root: string;
  beforeAll(async () => {
    portA = await freePort();
    [pebble, redis] = await Promise.all([startPebble({ tlsPort: portA, certificateValidity: 3600 }), startRedis()]);
    root = await pebble.issuingRootFile();
  }, 30_000);
  afterEach(async () => {
    await stopAll();
    redis.cli('FLUSHALL'); // each test's nodes have their own secret key
  });
  afterAll(async () => {
    await pebble?.stop();
    await redis?.stop();
  });

  it('a second node on the same Redis picks up the stored certificate instead of ordering again', async () => {
    // renewBeforeDays 0: an hour's certificate is not due during the test.
    const a = await startDaemon({ ...acmeConfig(pebble, portA, { renewBeforeDays: 0 }), redis: redis.url, nodeId: 'node-a' });
    await a.proc.waitLog('ACME certificate obtained', 1, 60_000);
    const portB = await freePort();
    // Node B shares the store and the secret key (the certificate's key is sealed with it).
    const b = await startDaemon({ ...acmeConfig(pebble, portB, { renewBeforeDays: 0 }), redis: redis.url, nodeId: 'node-b', secretKeyFile: `${a.dataDir}/secret.key` });
    await b.proc.waitLog('ACME certificate loaded', 1, 30_000);
    expect(b.proc.logs('ACME order started')).toHaveLength(0);
    const [certA, certB] = await Promise.all([servedCert(portA, REGISTRAR), servedCert(portB, REGISTRAR)]);
    expect(certB.serialNumber).toBe(certA.serialNumber);
    const r = await curlVerified(REGISTRAR, portB, root);
    expect(r.code, r.stderr).toBe(0);
  }, 120_000);

  it('two nodes starting together order once: the lock lets one order, the other adopts its certificate', async () => {
    const secretKeyFile = path.join(tempDir(), 'secret.key');
    SecretBox.fromFile(secretKeyFile); // one key for both nodes, made before either starts
    const portB = await freePort();
    const node = (port: number, nodeId: string) => startDaemon({ ...acmeConfig(pebble, port, { renewBeforeDays: 0, checkInterval: 1 }), redis: redis.url, nodeId, secretKeyFile });
    // pebble validates at A's port only: if B wins the lock, A answers B's challenge from the store.
    const [a, b] = await Promise.all([node(portA, 'node-a'), node(portB, 'node-b')]);
    const ready = (p: Daemon) => p.proc.until(() => p.proc.lines.some((l) => typeof l.msg === 'string' && /^ACME certificate (obtained|loaded|picked up from the store)$/.test(l.msg)), 'a certificate', 60_000);
    await Promise.all([ready(a), ready(b)]);
    // One certificate issued, the other node adopting it. (Counted on issuance, not on orders
    // started: an order the CA fails under load, retried by whichever node holds the lock next,
    // is still one node ordering at a time.)
    const issued = a.proc.logs('ACME certificate obtained').length + b.proc.logs('ACME certificate obtained').length;
    expect(issued).toBe(1);
    const [certA, certB] = await Promise.all([servedCert(portA, REGISTRAR), servedCert(portB, REGISTRAR)]);
    expect(certB.serialNumber).toBe(certA.serialNumber);
    expect(certA.issuer).not.toContain('taas-server relay CA');
  }, 120_000);

  it('a renewal made by one node is picked up and served by the other without a restart', async () => {
    // Node A renews five seconds after each issuance; node B would renew only at expiry, an hour away.
    const a = await startDaemon({ ...acmeConfig(pebble, portA, { renewBeforeDays: 3595 / 86400, checkInterval: 2 }), redis: redis.url, nodeId: 'node-a' });
    await a.proc.waitLog('ACME certificate obtained', 1, 60_000);
    const portB = await freePort();
    const b = await startDaemon({ ...acmeConfig(pebble, portB, { renewBeforeDays: 0, checkInterval: 1 }), redis: redis.url, nodeId: 'node-b', secretKeyFile: `${a.dataDir}/secret.key` });
    const loaded = await b.proc.waitLog('ACME certificate loaded', 1, 30_000);
    const renewed = await a.proc.waitLog('ACME certificate obtained', 2, 60_000);
    expect(renewed.notAfter).not.toBe(loaded.notAfter);
    const picked = await b.proc.waitLog('ACME certificate picked up from the store', 1, 30_000, { notAfter: renewed.notAfter });
    expect(picked.names).toEqual([REGISTRAR]);
    expect(b.proc.logs('ACME order started')).toHaveLength(0);
    expect(new Date((await servedCert(portB, REGISTRAR)).validTo).getTime()).toBe(new Date(String(renewed.notAfter)).getTime());
    expect(b.proc.logs('taas-server ready')).toHaveLength(1);
  }, 120_000);
});
