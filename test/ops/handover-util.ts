/**
 * Helpers shared by the `taas-server restart` tests: after a restart the running daemon is a
 * process the test did not spawn (restart detaches it), so stopAll() cannot reach it; these
 * find it through the runtime file and stop it by pid.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pollUntil } from '../helpers/net.js';
import type { Daemon } from '../helpers/daemon.js';

/** The daemon the runtime file names now; stopped after the test (restart detaches it). */
export function runningPid(d: Daemon): number {
  return (JSON.parse(fs.readFileSync(path.join(d.dataDir, 'daemon.json'), 'utf8')) as { pid: number }).pid;
}

/** A closer: SIGTERM to `pid`, then waits (up to `timeoutMs`) until it has exited; a pid already gone is fine. */
export function stopPid(pid: number, timeoutMs = 20_000): () => Promise<void> {
  return async () => {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      return;
    }
    await pollUntil(() => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    }, timeoutMs, 20, `pid ${pid} exits`);
  };
}
