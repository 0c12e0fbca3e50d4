/**
 * Issue 17 on the embedded store: the data dir (a real tmpfs mounted for the test) becomes
 * unwritable — filled to the last byte, or remounted read-only — under the same steady client
 * load as the Redis outage tests. The node degrades the same way (clients served, TOTP
 * registrations 503, records kept in memory, /metrics up with taas_store_up 0) and recovers
 * when the disk has room again or is writable again. Mounts are undone in afterEach, whatever
 * the test's outcome.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Daemon, FAST_CONFIG, stopAll, tempDir } from '../helpers/daemon.js';
import { runOutage, setUpRelay, ALL_LABELS, type Relay } from '../multinode/outage-scenario.js';
import { metrics } from '../ops/util.js';

/**
 * How long the data dir stays unwritable: the outage is the scenario itself, not a wait for a
 * state; long enough for clients of every label (those never asked for before too) to come.
 */
const OUTAGE_MS = 5000;

/** Resolves OUTAGE_MS after `since` (performance.now()). */
const outageOver = (since: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, since + OUTAGE_MS - performance.now())));

/** Room for the data dir's files and a few hundred pairings' history, small enough to fill at once. */
const TMPFS_SIZE = '8m';

let mountPoint: string | null = null;
let relay: Relay | undefined;

let daemon: Daemon | undefined;

afterEach(async () => {
  try {
    await relay?.close();
    await daemon?.stop();
  } finally {
    relay = undefined;
    daemon = undefined;
    if (mountPoint) {
      // Lazy: a process that still has a file open there must not keep the mount (and the test) alive.
      execFileSync('umount', ['-l', mountPoint]);
      mountPoint = null;
    }
    // Only then the temp dirs (the mount point among them) and whatever else is left.
    await stopAll();
  }
});

async function startOnTmpfs(): Promise<Daemon> {
  const dir = tempDir('taas-unwritable-');
  mountPoint = path.join(dir, 'mnt');
  fs.mkdirSync(mountPoint);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_SIZE},mode=0700`, 'tmpfs', mountPoint]);
  daemon = await new Daemon(dir, path.join(mountPoint, 'data'), { taasHost: '127.0.0.1', nodeId: 'node-a', taasPort: 0, adminPort: 0, ...FAST_CONFIG }).start();
  return daemon;
}

/** Pairings the embedded store holds on disk: its daily counters in state.json, over the scenario's labels. */
function pairingsOnDisk(d: Daemon): number {
  let state: { daily?: Record<string, { label: string; pairings: number }> };
  try {
    state = JSON.parse(fs.readFileSync(path.join(d.dataDir, 'state.json'), 'utf8'));
  } catch {
    return 0;
  }
  return Object.values(state.daily ?? {})
    .filter((c) => ALL_LABELS.includes(c.label))
    .reduce((n, c) => n + c.pairings, 0);
}

async function idleOn(d: Daemon, label: string): Promise<number> {
  return (await metrics(d)).get(`taas_idle_responders{label="${label}"}`) ?? 0;
}

describe('embedded store whose data dir becomes unwritable', () => {
  it('a full disk: clients served, records kept, monitoring up; all recovers once there is room', async () => {
    const d = await startOnTmpfs();
    relay = await setUpRelay([d], d.caFile, (_n, l) => idleOn(d, l));
    const filler = path.join(mountPoint!, 'filler');
    let since = 0;
    const figures = await runOutage(relay, {
      stop: async () => {
        since = performance.now();
        // Fill the file system to its last block (ENOSPC ends the write).
        const fd = fs.openSync(filler, 'w');
        const block = Buffer.alloc(1 << 20);
        try {
          for (;;) fs.writeSync(fd, block);
        } catch (e) {
          expect((e as NodeJS.ErrnoException).code).toBe('ENOSPC');
        } finally {
          fs.closeSync(fd);
        }
      },
      back: async () => {
        await outageOver(since);
        fs.rmSync(filler);
      },
      records: () => pairingsOnDisk(d),
    });
    console.info(`full data dir figures: ${JSON.stringify(figures)}`);
  }, 90_000);

  it('a read-only remount: the same, and all recovers once it is writable again', async () => {
    const d = await startOnTmpfs();
    relay = await setUpRelay([d], d.caFile, (_n, l) => idleOn(d, l));
    let since = 0;
    const figures = await runOutage(relay, {
      stop: async () => {
        since = performance.now();
        execFileSync('mount', ['-o', 'remount,ro', mountPoint!]);
      },
      back: async () => {
        await outageOver(since);
        execFileSync('mount', ['-o', 'remount,rw', mountPoint!]);
      },
      records: () => pairingsOnDisk(d),
    });
    console.info(`read-only data dir figures: ${JSON.stringify(figures)}`);
  }, 90_000);
});
