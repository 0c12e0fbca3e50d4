/**
 * A lock file taken with O_EXCL, so the CLI and a running daemon do not interleave their
 * read-modify-write of entries.json. A lock older than STALE_MS is from a crashed process.
 */
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { TaasError } from '../errors.js';

const STALE_MS = 10_000;
const WAIT_MS = 5_000;

export async function withFileLock<T>(lockFile: string, fn: () => T): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
    try {
      fs.writeFileSync(lockFile, String(process.pid), { flag: 'wx', mode: 0o600 });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      try {
        if (Date.now() - fs.statSync(lockFile).mtimeMs > STALE_MS) fs.rmSync(lockFile, { force: true });
      } catch {
        /* raced with its owner's release: try again */
      }
      if (Date.now() > deadline) throw new TaasError('TAAS_STORE_UNAVAILABLE', `lock ${lockFile} is held by another process`, { retryAfter: 1 });
      await sleep(delay);
    }
  }
  try {
    return fn();
  } finally {
    fs.rmSync(lockFile, { force: true });
  }
}
