/**
 * `taas-agent`: flags only. Reads the agent file, picks the engine once, builds the Agent, runs
 * until SIGINT/SIGTERM (drain), logs one status line on SIGUSR1, serves --metrics. Every
 * mistake a user can make on the command line ends in one line and a non-zero exit.
 */
import fs from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import path from 'node:path';
import { Agent, AGENT_DEFAULTS } from '../agent/agent.js';
import { AgentAcme, LETS_ENCRYPT } from '../agent/acme.js';
import { agentLogger } from '../agent/log.js';
import { serveAgentMetrics, type AgentMetrics } from '../agent/metrics.js';
import { selectEngine, type EngineChoice } from '../relay/engines/select.js';
import { oneLine } from '../errors.js';
import { parseAgentFile, parseEndpoint, type AgentFile } from '../protocol/index.js';

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function endpoint(v: string) {
  const ep = parseEndpoint(v);
  if (!ep) throw new InvalidArgumentError('expected HOST:PORT (IPv6 in brackets), e.g. 127.0.0.1:8080');
  return ep;
}

/** HOST:PORT to listen on; port 0 lets the system choose (the start-up line says which). */
function listenAddress(v: string) {
  const any = /^(.*):0$/.exec(v);
  const ep = parseEndpoint(any ? `${any[1]}:1` : v);
  if (!ep) throw new InvalidArgumentError('expected HOST:PORT to listen on (IPv6 in brackets), e.g. 127.0.0.1:9464');
  return any ? { host: ep.host, port: 0 } : ep;
}

function intIn(lo: number, hi: number) {
  return (v: string) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < lo || n > hi) throw new InvalidArgumentError(`expected a whole number ${lo}..${hi}`);
    return n;
  };
}

function secondsIn(lo: number, hi: number) {
  return (v: string) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < lo || n > hi) throw new InvalidArgumentError(`expected seconds ${lo}..${hi}`);
    return n;
  };
}

function dnsName(v: string) {
  if (!/^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(v)) throw new InvalidArgumentError('expected a DNS name, e.g. example.com');
  return v.toLowerCase();
}

function httpsUrl(v: string) {
  if (!/^https:\/\/[^\s/]+/.test(v)) throw new InvalidArgumentError('expected an https:// URL');
  return v;
}

function daysIn(lo: number, hi: number) {
  return (v: string) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < lo || n > hi) throw new InvalidArgumentError(`expected days ${lo}..${hi}`);
    return n;
  };
}

function collect(v: string, prev: string[] = []) {
  return [...prev, v.toLowerCase()];
}

interface Flags {
  config: string;
  target: { host: string; port: number };
  pool: number;
  label?: string[];
  tls?: boolean;
  serverFirst?: boolean;
  proxyProtocol?: 'v1' | 'v2';
  metrics?: { host: string; port: number };
  engine: EngineChoice;
  acme?: boolean;
  acmeDomain?: string;
  acmeDirectory: string;
  acmeEmail?: string;
  acmeCaFile?: string;
  acmeDir?: string;
  acmeRenewBefore: number;
  recycle: number;
  retryMax: number;
  drain: number;
  state: string;
  logLevel: string;
}

function program(): Command {
  return new Command('taas-agent')
    .description('Hidden-server side of taas: keeps registrations open at the relay and forwards each paired connection to a local target.')
    .requiredOption('-c, --config <file>', 'agent file written by `taas-server entries add --out FILE`')
    .requiredOption('-t, --target <host:port>', 'where paired connections are forwarded', endpoint)
    .option('-p, --pool <n>', 'registrations kept open per label', intIn(1, 1000), AGENT_DEFAULTS.pool)
    .option('-l, --label <label>', 'label to register (repeatable; default: every label in the file)', collect)
    .option('--tls', 'terminate TLS here with the certificate from the agent file and forward plaintext to the target')
    .option('--server-first', 'no effect, kept for old command lines: the target is connected when a client is paired, and its banner (SSH, SMTP) reaches the client as it is')
    .addOption(new Option('--proxy-protocol <version>', "pass the client's address on to the target as a PROXY protocol header (nginx proxy_protocol, HAProxy accept-proxy); without it the header is stripped").choices(['v1', 'v2']))
    .option('--metrics <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics', listenAddress)
    .addOption(new Option('--engine <engine>', 'how octets are moved in raw mode: splice (native, zero-copy), stream (JavaScript), auto (splice where it loads)').choices(['auto', 'splice', 'stream']).default('auto'))
    .option('--acme', "obtain a public certificate for LABEL.<--acme-domain> from an ACME CA (TLS-ALPN-01 through the relay; you agree to the CA's terms) and terminate TLS with it, as --tls does")
    .option('--acme-domain <name>', "the relay's namedServers: the certificate is for LABEL.<name> (needed with --acme)", dnsName)
    .option('--acme-directory <url>', 'ACME directory URL', httpsUrl, LETS_ENCRYPT)
    .option('--acme-email <address>', 'contact address for the ACME account')
    .option('--acme-ca-file <file>', "PEM file trusted for the ACME directory's HTTPS (a private CA)")
    .option('--acme-dir <dir>', 'where the ACME account key, certificate and key are kept (mode 0600; default: <agent file>.acme)')
    .option('--acme-renew-before <days>', 'renew this many days before expiry', daysIn(0, 365), 30)
    .option('--recycle <seconds>', 'replace idle registrations older than this', secondsIn(1, 86400), AGENT_DEFAULTS.recycleMs / 1000)
    .option('--retry-max <seconds>', 'cap of the exponential backoff while the relay is down or refusing', secondsIn(1, 3600), AGENT_DEFAULTS.retryCapMs / 1000)
    .option('--drain <seconds>', 'on SIGINT/SIGTERM, time given to pairings in progress', secondsIn(0, 3600), 10)
    .option('--state <file>', 'where the session token and last spent TOTP step are kept (0600), so a restart registers at once (default: <agent file>.state)')
    .addOption(new Option('--log-level <level>', 'log level').choices(LEVELS).default('info'))
    .configureOutput({ outputError: (str, write) => write(`taas-agent: ${str.replace(/^error: /, '')}`) });
}

function die(msg: string): never {
  process.stderr.write(`taas-agent: ${msg}\n`);
  process.exit(2);
}

export async function main(argv: string[]): Promise<void> {
  const cmd = program();
  cmd.parse(argv);
  const f = cmd.opts<Flags>();

  let text: string;
  try {
    text = fs.readFileSync(f.config, 'utf8');
  } catch (e) {
    die(`cannot read agent file ${f.config}: ${(e as NodeJS.ErrnoException).code ?? oneLine(e)}`);
  }
  let agent: Agent;
  let file: AgentFile;
  const log = agentLogger(f.logLevel);
  let engineNote: string | undefined;
  let acme: AgentAcme | null = null;
  try {
    file = parseAgentFile(text, f.config);
    // Chosen once, like the daemon's: --tls (and --acme, which terminates TLS too) copies plaintext in JavaScript and needs no engine.
    const chosen = await selectEngine(f.tls === true || f.acme === true ? 'stream' : f.engine, { info: () => {} });
    engineNote = chosen.note;
    if (f.acme && !f.acmeDomain) die('--acme needs --acme-domain (the relay\'s namedServers, e.g. relay.example.com)');
    if (f.acme && f.acmeCaFile && !fs.existsSync(f.acmeCaFile)) die(`cannot read --acme-ca-file ${f.acmeCaFile}: no such file`);
    const labels = f.label ?? file.labels;
    if (f.acme) {
      acme = new AgentAcme({
        directoryUrl: f.acmeDirectory,
        email: f.acmeEmail,
        caFile: f.acmeCaFile,
        names: labels.map((l) => `${l}.${f.acmeDomain}`),
        dir: path.resolve(f.acmeDir ?? `${f.config}.acme`),
        renewBeforeDays: f.acmeRenewBefore,
        checkInterval: 3600,
        log,
      });
    }
    const acmeTls = acme ? () => acme!.responderTls() : undefined;
    agent = new Agent({
      ...AGENT_DEFAULTS,
      file,
      target: f.target,
      labels,
      pool: f.pool,
      tls: f.tls === true && !acme,
      acmeTls,
      serverFirst: f.serverFirst === true,
      proxyProtocol: f.proxyProtocol ?? null,
      engine: chosen.engine,
      recycleMs: f.recycle * 1000,
      retryCapMs: Math.max(AGENT_DEFAULTS.retryBaseMs, f.retryMax * 1000),
      stateFile: f.state ?? `${f.config}.state`,
      log,
    });
  } catch (e) {
    die(oneLine(e));
  }

  let metrics: AgentMetrics | null = null;
  if (f.metrics) {
    try {
      metrics = await serveAgentMetrics(agent, f.metrics.host, f.metrics.port);
    } catch (e) {
      die(`cannot serve --metrics on ${f.metrics.host}:${f.metrics.port}: ${(e as NodeJS.ErrnoException).code ?? oneLine(e)}`);
    }
  }

  let stopping = false;
  const onSignal = (sig: string) => {
    if (stopping) process.exit(1); // a second signal: do not wait for pairings
    stopping = true;
    log.info({ signal: sig }, 'stopping');
    const exit = (code: number) => log.flush(() => process.exit(code)); // the logger writes asynchronously
    acme?.stop();
    agent.stop(f.drain * 1000).then(
      async () => {
        await metrics?.close();
        log.info('stopped');
        exit(0);
      },
      (e: unknown) => {
        log.error({ err: oneLine(e) }, 'error while stopping');
        exit(1);
      },
    );
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGUSR1', () => log.info(agent.status(), 'status'));
  const terminatesTls = f.tls === true || acme !== null;
  const engine = terminatesTls ? 'pipe' : agent.engine.name;
  if (engineNote && !terminatesTls) log.info({ engine }, engineNote);
  log.info(
    {
      id: file.id,
      labels: agent.pools.map((p) => p.label),
      pool: f.pool,
      target: `${f.target.host}:${f.target.port}`,
      tls: terminatesTls,
      ...(acme ? { acme: f.acmeDirectory } : {}),
      engine,
      ...(terminatesTls ? { copy: `${acme ? '--acme' : '--tls'} terminates TLS in JavaScript` } : {}),
      proxyProtocol: f.proxyProtocol ?? 'strip',
      nodes: agent.nodes.size,
      ...(metrics ? { metrics: `${metrics.address.host}:${metrics.address.port}` } : {}),
    },
    // A stable message (tests and log queries match it); the engine and what --tls changes are fields.
    'starting',
  );
  if (f.serverFirst === true) log.info('--server-first has no effect: the target is connected when a client is paired');
  agent.start();
  // The CA's validation reaches the agent through its registrations: ordering starts alongside.
  acme?.start().catch((e: unknown) => log.error({ err: oneLine(e) }, 'ACME certificate keeping stopped'));
}
