/**
 * The runtime file (`daemon.json` in the data dir): the running daemon writes it once ready,
 * and the CLI and tests read it to find that daemon's ports. Its own module so that a CLI
 * command can find a daemon without loading one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../util/atomic-file.js';

export interface RuntimeInfo {
  pid: number;
  nodeId: string;
  engine: string;
  store: string;
  registrar: { host: string; port: number; url: string };
  admin: { host: string; port: number; url: string } | null;
  startedAt: string;
}

export function runtimeFile(dataDir: string): string {
  return path.resolve(dataDir, 'daemon.json');
}

/** The running daemon of a data dir, if its runtime file names a live process. */
export function readRuntime(dataDir: string): RuntimeInfo | null {
  try {
    const info = JSON.parse(fs.readFileSync(runtimeFile(dataDir), 'utf8')) as RuntimeInfo;
    process.kill(info.pid, 0);
    return info;
  } catch {
    return null;
  }
}

export function writeRuntime(dataDir: string, info: RuntimeInfo): void {
  writeFileAtomic(runtimeFile(dataDir), JSON.stringify(info, null, 2) + '\n', 0o644);
}

/** Removes the runtime file if this process wrote it (a newer daemon's file is left alone). */
export function removeRuntime(dataDir: string): void {
  try {
    const info = JSON.parse(fs.readFileSync(runtimeFile(dataDir), 'utf8')) as RuntimeInfo;
    if (info.pid === process.pid) fs.rmSync(runtimeFile(dataDir), { force: true });
  } catch {
    /* already gone */
  }
}
