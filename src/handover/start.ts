/**
 * How a daemon started by `taas-server restart` comes by what it serves: the running daemon's
 * hand-over, or — where there can be none (the addon is not built, the running daemon speaks
 * another hand-over format) — today's drain: the running daemon is sent SIGTERM, drains, and
 * exits, and this one then starts on the ports it freed.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { TaasError, isTaasError } from '../errors.js';
import { readRuntime } from '../observe/runtime-file.js';
import { descriptorPassing } from '../relay/engines/socket-options.js';
import type { DescriptorPassing } from '../relay/engines/socket-options.js';
import { TakeOver, becomeMainPid, type Received } from './new-side.js';

/** How often the draining daemon's pid is looked at (no event tells another process's exit). */
const EXIT_POLL_MS = 100;
/** Beyond drainTimeout: time for the old daemon to close its store and exit. */
const EXIT_SLACK_MS = 15_000;

export interface Adopted {
  session: TakeOver;
  received: Received;
  /** For the relay: closing received descriptors its engine dup()ed. */
  ops: { dup(fd: number): number; close(fd: number): void };
}

export async function takeOverOrDrain(config: Readonly<Config>, logger: Logger, note?: (line: string) => void): Promise<Adopted | null> {
  const { io, why } = descriptorPassing();
  if (!io) {
    // Under systemd the old process's exit would end the service (and this process with it):
    // without the addon this process cannot say it is the main process now.
    if (process.env.NOTIFY_SOCKET) throw new TaasError('TAAS_HANDOVER_UNAVAILABLE', `hand-over unavailable (${why}); under systemd use systemctl restart (a drain)`);
    return drainOld(config, logger, `hand-over unavailable (${why})`, note);
  }
  let session: TakeOver;
  try {
    session = await TakeOver.connect(config.dataDir, io);
  } catch (e) {
    if (isTaasError(e, 'TAAS_HANDOVER_REFUSED') && /format/.test((e as Error).message)) return drainOld(config, logger, (e as Error).message, note, io);
    throw e;
  }
  const received = session.receive();
  note?.(`handed over from pid ${session.oldPid}: ${received.relay.pairings.length} pairings, ${received.relay.idle.length} idle responders, ${received.relay.waiting.length} waiting clients`);
  return { session, received, ops: { dup: (fd) => io.dupFd(fd), close: (fd) => io.closeFd(fd) } };
}

async function drainOld(config: Readonly<Config>, logger: Logger, why: string, note?: (line: string) => void, io?: DescriptorPassing): Promise<null> {
  const old = readRuntime(config.dataDir);
  if (!old) throw new TaasError('TAAS_HANDOVER_UNAVAILABLE', `${why}, and no running daemon found in ${config.dataDir} to drain`);
  if (io) becomeMainPid(io); // before the old one exits, or systemd would take its exit for the service's
  logger.warn({ pid: old.pid }, `${why}: falling back to a drain of the running daemon`);
  process.kill(old.pid, 'SIGTERM');
  const deadline = Date.now() + config.drainTimeout * 1000 + EXIT_SLACK_MS;
  for (;;) {
    try {
      process.kill(old.pid, 0);
    } catch {
      break;
    }
    if (Date.now() > deadline) throw new TaasError('TAAS_HANDOVER_FAILED', `${why}; the running daemon (pid ${old.pid}) did not exit after its drain`);
    await new Promise((r) => setTimeout(r, EXIT_POLL_MS));
  }
  note?.(`${why}: drained pid ${old.pid}, then started`);
  return null;
}
