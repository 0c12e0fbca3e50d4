/**
 * Real ACME CA for tests: Debian's `pebble` with `pebble-challtestsrv` as its DNS, both on
 * loopback with free ports. challtestsrv answers every A query with 127.0.0.1 (and no AAAA),
 * so pebble's validation connections for any name reach this machine: TLS-ALPN-01 on
 * `tlsPort`, HTTP-01 on `httpPort` (the caller chooses them: they must be where the responder
 * listens). pebble's own HTTPS (the ACME directory) uses a certificate made here from a
 * throw-away CA (`directoryCaFile`, what an ACME client trusts to talk to pebble); the roots of
 * the certificates pebble issues come from its management endpoint (`issuingRoot()`).
 * Readiness is awaited on the programs' own log lines, never on sleeps.
 *
 *   const port = await freePort();                       // where the code under test will listen
 *   const pebble = await startPebble({ tlsPort: port });  // TLS-ALPN-01 validations go there
 *   // config: acme: { directoryUrl: pebble.directoryUrl, caFile: pebble.directoryCaFile,
 *   //                 rootFile: await pebble.issuingRootFile(), termsOfServiceAgreed: true }
 *   // curl --cacert "$(await pebble.issuingRootFile())" ...; afterAll: pebble.stop()
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { issueLeaf, makeRegistrarCert } from '../../src/tls/certs.js';
import { connect, freePort, LOOPBACK, pollUntil } from './net.js';

export interface PebbleOptions {
  /** Where pebble connects for TLS-ALPN-01 (every name resolves to 127.0.0.1). */
  tlsPort: number;
  /** Where pebble connects for HTTP-01; default: a free port nobody listens on. */
  httpPort?: number;
  /** Seconds the certificates it issues are valid (pebble's default is about five years). */
  certificateValidity?: number;
}

export interface Pebble {
  /** The ACME directory URL (HTTPS). */
  directoryUrl: string;
  /** PEM file of the CA behind pebble's own HTTPS listener: give it to the ACME client. */
  directoryCaFile: string;
  /** pebble-challtestsrv's management API (set-txt for DNS-01 hooks, ...). */
  challtestUrl: string;
  /** PEM of the root that signs the certificates pebble issues (management /roots/0). */
  issuingRoot(): Promise<string>;
  /** Writes issuingRoot() to a file and returns its path (for curl --cacert). */
  issuingRootFile(): Promise<string>;
  /** Log text of both programs, for failure messages. */
  logs(): string;
  stop(): Promise<void>;
}

const START_MS = 15_000;

interface Child {
  proc: ChildProcess;
  out: string;
  exited: Promise<void>;
}

function start(bin: string, args: string[], env: NodeJS.ProcessEnv, ready: RegExp): Promise<Child> {
  const proc = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const c: Child = { proc, out: '', exited: new Promise((r) => proc.once('close', () => r())) };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${bin} not ready within ${START_MS} ms:\n${c.out}`));
    }, START_MS);
    const onData = (d: Buffer) => {
      c.out += d.toString('utf8');
      if (ready.test(c.out)) {
        clearTimeout(timer);
        resolve(c);
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    proc.once('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`${bin} exited (${code}) before it was ready:\n${c.out}`));
    });
  });
}

/**
 * pebble prints "Listening on" and "ACME directory available" just before its goroutines bind
 * (a connection at once can meet ECONNREFUSED): its ports are ready when they accept one.
 * The TCP connect is the only signal pebble gives.
 */
function accepting(port: number): Promise<void> {
  return pollUntil(
    async () => {
      try {
        (await connect(port)).destroy();
        return true;
      } catch {
        return false;
      }
    },
    START_MS,
    10,
    `pebble's port ${port} accepting`,
  );
}

async function stopChild(c: Child): Promise<void> {
  if (c.proc.exitCode !== null || c.proc.signalCode !== null) return;
  c.proc.kill('SIGTERM');
  const timer = setTimeout(() => c.proc.kill('SIGKILL'), 5000);
  await c.exited;
  clearTimeout(timer);
}

function get(url: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: ${res.statusCode} ${body}`))));
      })
      .on('error', reject);
  });
}

/** Starts challtestsrv and pebble; stop() both in afterAll/afterEach. */
export async function startPebble(opts: PebbleOptions): Promise<Pebble> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'taas-pebble-'));
  const [dnsPort, challMgmt, acmePort, mgmtPort, spareHttp] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  // pebble's HTTPS: a throw-away CA and a leaf for the loopback address it is dialled on.
  const ca = makeRegistrarCert({ dns: [], ips: [] }, 'taas test pebble directory CA', 2);
  const leaf = issueLeaf(ca, { dns: ['localhost'], ips: [LOOPBACK] }, { validDays: 2 });
  const directoryCaFile = path.join(dir, 'directory-ca.pem');
  fs.writeFileSync(directoryCaFile, ca.cert);
  fs.writeFileSync(path.join(dir, 'cert.pem'), leaf.cert);
  fs.writeFileSync(path.join(dir, 'key.pem'), leaf.key);
  const config = {
    pebble: {
      listenAddress: `${LOOPBACK}:${acmePort}`,
      managementListenAddress: `${LOOPBACK}:${mgmtPort}`,
      certificate: path.join(dir, 'cert.pem'),
      privateKey: path.join(dir, 'key.pem'),
      httpPort: opts.httpPort ?? spareHttp,
      tlsPort: opts.tlsPort,
      ocspResponderURL: '',
      externalAccountBindingRequired: false,
      ...(opts.certificateValidity ? { certificateValidityPeriod: opts.certificateValidity } : {}),
    },
  };
  fs.writeFileSync(path.join(dir, 'pebble.json'), JSON.stringify(config, null, 2));
  // Only the DNS and management listeners: challtestsrv's own challenge servers would take
  // the ports the code under test must answer on.
  const dns = await start(
    'pebble-challtestsrv',
    ['-dns01', `${LOOPBACK}:${dnsPort}`, '-management', `${LOOPBACK}:${challMgmt}`, '-http01', '', '-https01', '', '-tlsalpn01', '', '-defaultIPv4', LOOPBACK, '-defaultIPv6', ''],
    {},
    /Starting management server/,
  );
  let pebble: Child | undefined;
  try {
    pebble = await start(
      'pebble',
      ['-config', path.join(dir, 'pebble.json'), '-dnsserver', `${LOOPBACK}:${dnsPort}`, '-strict=false'],
      // No random sleeps before validation, no nonces refused on purpose: brisk tests.
      { PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' },
      /ACME directory available at/,
    );
    await Promise.all([accepting(acmePort), accepting(mgmtPort), accepting(challMgmt)]);
  } catch (e) {
    await stopChild(dns);
    if (pebble) await stopChild(pebble);
    throw e;
  }
  const started = pebble;
  const mgmt = `https://${LOOPBACK}:${mgmtPort}`;
  return {
    directoryUrl: `https://${LOOPBACK}:${acmePort}/dir`,
    directoryCaFile,
    challtestUrl: `http://${LOOPBACK}:${challMgmt}`,
    issuingRoot: () => get(`${mgmt}/roots/0`, ca.cert),
    async issuingRootFile() {
      const file = path.join(dir, 'issuing-root.pem');
      fs.writeFileSync(file, await get(`${mgmt}/roots/0`, ca.cert));
      return file;
    },
    logs: () => `pebble:\n${pebble.out.slice(-3000)}\nchalltestsrv:\n${dns.out.slice(-1000)}`,
    async stop() {
      await Promise.all([stopChild(started), stopChild(dns)]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
