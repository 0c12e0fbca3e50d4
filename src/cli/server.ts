/**
 * `taas-server`: the daemon and the operator's commands. Every failure is one line naming
 * what is wrong and a non-zero exit; never a stack trace.
 */
import { applyPolicyFlags, hasPolicyFlags, isEmptyPolicy, type PolicyFlags } from '../protocol/policy.js';
import fs from 'node:fs';
import path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { restart, reportTakeOver } from './restart.js';
import { loadConfig, maskConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { TaasError, oneLine } from '../errors.js';
import { createLogger } from '../observe/logger.js';
import { generatedCertPaths, writeRegistrarCert } from '../tls/relay-tls.js';
import { versionReport } from './version.js';
import { printPairings, printEntries, printPolicy } from './print.js';
import { checkKeyFile, withOperator } from './operator.js';
import { addStoreCommands } from './store-commands.js';
import { checkAcmeFiles } from '../tls/acme/files-check.js';
import { CLIENT_MODES, type ClientMode } from '../store/types.js';

interface GlobalOpts {
  config?: string;
  dataDir?: string;
  logLevel?: string;
}

async function config(opts: GlobalOpts): Promise<{ config: Readonly<Config>; file: string | null }> {
  return loadConfig({ configFile: opts.config, flags: { dataDir: opts.dataDir, logLevel: opts.logLevel } });
}

async function start(opts: GlobalOpts & { takeOver?: boolean }): Promise<void> {
  const takeOver = opts.takeOver === true;
  let c: Readonly<Config>;
  let file: string | null;
  try {
    ({ config: c, file } = await config(opts));
  } catch (e) {
    if (takeOver) failTakeOver(e);
    throw e;
  }
  const logger = createLogger({ level: c.logLevel });
  // Loaded here only: every other command runs without the daemon's modules.
  const { Daemon } = await import('../daemon.js');
  let stopping = false;
  let exitCode = 0;
  // Found after start (the store answered late): the node stops as on SIGTERM, exiting 1.
  const onFatal = (e: TaasError) => {
    process.stderr.write(`taas-server: ${oneLine(e)}\n`);
    exitCode = 1;
    // The loop may empty before the exit timer below fires (it is unref'd): exit 1 either way.
    process.exitCode = 1;
    onTerm('fatal');
  };
  let note = '';
  let daemon: Awaited<ReturnType<typeof Daemon.start>>;
  try {
    daemon = await Daemon.start(c, file, logger, onFatal, {
      takeOver,
      onTakenOver: (line) => void (note = line),
      onHandedOver: (code) => {
        logger.flush?.();
        setTimeout(() => process.exit(code), 50).unref();
      },
    });
  } catch (e) {
    if (takeOver) {
      logger.error({ err: oneLine(e) }, 'not started: the running daemon keeps serving');
      logger.flush?.();
      failTakeOver(e);
    }
    throw e;
  }
  if (takeOver) reportTakeOver({ ok: true, pid: process.pid, note });
  const onTerm = (sig: string) => {
    if (stopping) {
      logger.warn({ signal: sig }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal: sig }, 'stopping: draining established pairings');
    void daemon
      .drain()
      .then(() => daemon.stop())
      .then(() => {
        logger.info('stopped');
        logger.flush?.();
        setTimeout(() => process.exit(exitCode), 50).unref();
      })
      .catch((e) => {
        logger.error({ err: oneLine(e) }, 'error while stopping');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => onTerm('SIGTERM'));
  process.on('SIGINT', () => onTerm('SIGINT'));
  process.on('SIGHUP', () => void daemon.reload());
  // Toggles debug logging at run time without a restart, and back to the level in force before
  // (which a SIGHUP or the admin API may have changed since start).
  let beforeDebug: string = c.logLevel;
  process.on('SIGUSR2', () => {
    if (logger.level === 'debug') logger.level = beforeDebug === 'debug' ? c.logLevel : beforeDebug;
    else {
      beforeDebug = logger.level;
      logger.level = 'debug';
    }
    logger.info({ level: logger.level }, 'log level changed');
  });
}

/** A daemon started by `restart` that cannot start: `restart` prints the one line, not this process. */
function failTakeOver(e: unknown): never {
  reportTakeOver({ ok: false, why: oneLine(e) });
  process.exit(e instanceof TaasError && e.code.startsWith('TAAS_CONFIG') ? 2 : 1);
}

function parseClientPorts(values: string[] | undefined): Record<string, number> | undefined {
  if (!values?.length) return undefined;
  const out: Record<string, number> = {};
  for (const v of values) {
    const m = /^([^=]+)=(\d+)$/.exec(v);
    if (!m) throw new TaasError('TAAS_BAD_REQUEST', `--client-port ${v}: expected LABEL=PORT`);
    out[m[1]!.toLowerCase()] = Number(m[2]);
  }
  return out;
}

/** `--client-mode MODE` (every label) or `LABEL=MODE` (one), repeatable. */
function parseClientModes(values: string[] | undefined, labels: string[]): Record<string, ClientMode> | undefined {
  if (!values?.length) return undefined;
  const out: Record<string, ClientMode> = {};
  for (const v of values) {
    const m = /^(?:([^=]+)=)?(.*)$/.exec(v)!;
    const mode = m[2] as ClientMode;
    if (!CLIENT_MODES.includes(mode)) throw new TaasError('TAAS_BAD_REQUEST', `--client-mode ${v}: expected ${CLIENT_MODES.join(' or ')}, or LABEL=MODE`);
    for (const l of m[1] !== undefined ? [m[1]] : labels) out[l.toLowerCase()] = mode;
  }
  return out;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function buildProgram(): Command {
  const program = new Command('taas-server')
    .description('TCP rendezvous relay for servers hidden behind NAT and firewalls')
    .option('-v, --version', 'print the version and the relay engine in use, then exit')
    .option('--config <file>', 'config file (.ts, .js or .json); otherwise TAAS_CONFIG, /etc/taas-server/config.*, ./local.*')
    .option('--data-dir <dir>', 'data directory (default ./.taas, or TAAS_DATA_DIR)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent')
    .showHelpAfterError('(run with --help for usage)');

  program
    .command('start', { isDefault: true })
    .description('run the relay daemon')
    // Internal: how `restart` starts the new daemon (it reports to restart on descriptor 3).
    .addOption(new Option('--take-over', 'take over from the daemon running on the data dir').hideHelp())
    .action(async (_o, cmd: Command) => start(cmd.optsWithGlobals()));

  program
    .command('restart')
    .description('start a new daemon (this build) and hand it every port, responder and pairing of the running one, without cutting any')
    .action(async (_o, cmd: Command) => {
      const o = cmd.optsWithGlobals() as GlobalOpts;
      const { config: c } = await config(o);
      console.log(await restart(c, o));
    });

  program
    .command('version')
    .description('print the version, the relay engines available and the one the config selects')
    .action(async (_o, cmd: Command) => {
      const { config: c } = await config(cmd.optsWithGlobals());
      console.log(await versionReport(c));
    });

  program
    .command('make-cert')
    .description('write a key (mode 0600) and self-signed certificate for the registrar (SANs IP:taasHost, DNS:namedRegistrar, DNS:*.namedServers)')
    .option('--force', 'overwrite existing files')
    .action(async (o: { force?: boolean }, cmd: Command) => {
      const { config: c } = await config(cmd.optsWithGlobals());
      const target = c.keyFile && c.certFile ? { keyFile: c.keyFile, certFile: c.certFile } : generatedCertPaths(c.dataDir);
      for (const f of [target.keyFile, target.certFile]) {
        if (fs.existsSync(f) && !o.force) throw new TaasError('TAAS_FILE_UNREADABLE', `${f} exists; use --force to replace it`);
      }
      writeRegistrarCert(c, target.keyFile, target.certFile);
      console.log(`key:         ${path.resolve(target.keyFile)} (mode 0600)\ncertificate: ${path.resolve(target.certFile)}`);
    });

  const entries = program.command('entries').description('manage hidden-server entries (a running daemon sees changes at once)');
  entries
    .command('add')
    .description('create an entry: prints its ID and otpauth:// URI, writes the agent file')
    .requiredOption('--label <label>', 'label granted to the entry (repeatable)', collect)
    .option('--id <id>', 'ID to use (default: a new UUID)')
    .option('--out <file>', 'agent file to write (default ./taas-agent-<label>.json)')
    .option('--client-port <label=port>', 'fixed client port for a label, for clients that cannot follow a redirect (repeatable)', collect)
    .option('--client-mode <mode>', 'how mobile clients reach the labels: redirect (a 307, the default) or passthrough (TLS routed by SNI on the shared port); LABEL=MODE for one label (repeatable)', collect)
    .action(async (o: { label: string[]; id?: string; out?: string; clientPort?: string[]; clientMode?: string[] }, cmd: Command) => {
      const { config: c } = await config(cmd.optsWithGlobals());
      await withOperator(c, async (op) => {
        const issued = await op.create({ id: o.id, labels: o.label, clientPorts: parseClientPorts(o.clientPort), clientMode: parseClientModes(o.clientMode, o.label) });
        const out = path.resolve(o.out ?? `taas-agent-${issued.entry.labels[0]}.json`);
        if (fs.existsSync(out)) fs.chmodSync(out, 0o600); // `mode` below applies to a new file only
        fs.writeFileSync(out, JSON.stringify(issued.agentFile, null, 2) + '\n', { mode: 0o600 });
        console.log(`id:         ${issued.entry.id}\nlabels:     ${issued.entry.labels.join(', ')}\notpauth:    ${issued.otpauthUri}\nagent file: ${out} (holds the secret; mode 0600)\nvia:        ${op.via}`);
      });
    });
  entries
    .command('list')
    .description('list entries (secrets are never shown)')
    .option('--json', 'JSON output')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      const { config: c } = await config(cmd.optsWithGlobals());
      await withOperator(c, async (op) => printEntries(await op.list(), !!o.json));
    });
  entries
    .command('remove <id>')
    .description('remove an entry')
    .action(async (id: string, _o, cmd: Command) => {
      const { config: c } = await config(cmd.optsWithGlobals());
      await withOperator(c, async (op) => {
        if (!(await op.remove(id))) throw new TaasError('TAAS_ENTRY_NOT_FOUND', `no entry with ID ${id}`);
        console.log(`removed ${id}`);
      });
    });
  entries
    .command('add-label <id> <label>')
    .description('grant another label to an entry')
    .action(async (id: string, label: string, _o, cmd: Command) => {
      const { config: c } = await config(cmd.optsWithGlobals());
      await withOperator(c, async (op) => {
        const e = await op.addLabel(id, label);
        console.log(`${e.id}: ${e.labels.join(', ')}`);
      });
    });

  entries
    .command('policy <label>')
    .description("show or change a label's traffic policy (alone: prints it); a running daemon applies a change to new pairings at once")
    .option('--allow <cidrs>', 'only mobile clients in these CIDRs (comma-separated, IPv4 and IPv6; "" removes the list)')
    .option('--deny <cidrs>', 'refuse mobile clients in these CIDRs, and close their established pairings ("" removes the list)')
    .option('--max-pairings <n>', 'pairings of the label at once')
    .option('--max-pairings-per-client <n>', 'pairings at once per client address (IPv6 by /64)')
    .option('--rate <n[/burst]>', 'new pairings per second per client address, with a burst')
    .option('--bandwidth <bytes_per_s>', 'octets per second each way, shared by the label\'s pairings')
    .option('--quota <bytes_per_day>', 'octets per UTC day, after which new pairings are refused')
    .option('--clear', 'remove the policy (the config\'s defaultPolicy applies); other flags then start from nothing')
    .option('--json', 'print the policy as JSON')
    .action(async (label: string, o: PolicyFlags & { json?: boolean }, cmd: Command) => {
      const { config: c } = await config(cmd.optsWithGlobals());
      const l = label.toLowerCase();
      await withOperator(c, async (op) => {
        let e = await op.entryOfLabel(l);
        if (hasPolicyFlags(o)) {
          const next = applyPolicyFlags(o.clear ? undefined : e.policies?.[l], o, `policy of ${l}`);
          e = await op.setPolicy(l, isEmptyPolicy(next) ? null : next);
        }
        printPolicy(l, e.policies?.[l], c.defaultPolicy, !!o.json);
      });
    });

  program
    .command('pairings <label>')
    .description('the most recent pairings of a label (who, when, path, bytes)')
    .option('--json', 'JSON output')
    .action(async (label: string, o: { json?: boolean }, cmd: Command) => {
      const { config: c } = await config(cmd.optsWithGlobals());
      await withOperator(c, async (op) => printPairings(await op.pairings(label.toLowerCase()), !!o.json));
    });

  program
    .command('config')
    .description('configuration')
    .command('check')
    .description('validate the config, check the secret key file against the store, and print the effective values, secrets masked')
    .action(async (_o, cmd: Command) => {
      const { config: c, file } = await config(cmd.optsWithGlobals());
      checkAcmeFiles(c);
      const note = await checkKeyFile(c);
      console.log(JSON.stringify({ file: file ?? '(embedded default)', config: maskConfig(c) }, null, 2));
      if (note) process.stderr.write(`taas-server: ${note}\n`);
    });

  addStoreCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  program.exitOverride();
  program.configureOutput({ writeErr: (s) => process.stderr.write(s) });
  try {
    if (argv.slice(2).some((a) => a === '--version' || a === '-v')) {
      const idx = argv.indexOf('--config');
      const { config: c } = await loadConfig({ configFile: idx > 0 ? argv[idx + 1] : undefined });
      console.log(await versionReport(c));
      return;
    }
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 2);
    process.stderr.write(`taas-server: ${oneLine(e)}\n`);
    process.exit(e instanceof TaasError && e.code.startsWith('TAAS_CONFIG') ? 2 : 1);
  }
}
