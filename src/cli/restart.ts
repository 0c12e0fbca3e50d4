/**
 * `taas-server restart`: starts this build's daemon with `start --take-over` on the same data
 * dir and config, and waits for it to say (one JSON line on its descriptor 3) whether it took
 * over. The new daemon outlives this command; the old one exits once it holds nothing.
 * Under systemd the new daemon tells the service manager it is the main process now
 * (handover/new-side.ts), before the old one may exit.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import type { Config } from '../config/schema.js';
import { TaasError } from '../errors.js';
import { readRuntime } from '../observe/runtime-file.js';

/** The new daemon checks, takes over and starts listening: seconds; the drain fallback takes drainTimeout more. */
const START_SLACK_MS = 60_000;

export interface TakeOverReport {
  ok: boolean;
  pid?: number;
  note?: string;
  why?: string;
}

/** Written by the new daemon for `restart` (descriptor 3, when restart opened it). */
export function reportTakeOver(r: TakeOverReport): void {
  try {
    fs.writeSync(3, JSON.stringify(r) + '\n');
    fs.closeSync(3);
  } catch {
    /* not started by restart */
  }
}

export async function restart(c: Readonly<Config>, opts: { config?: string; dataDir?: string; logLevel?: string }): Promise<string> {
  const old = readRuntime(c.dataDir);
  if (!old) throw new TaasError('TAAS_HANDOVER_UNAVAILABLE', `no running daemon in ${c.dataDir} to restart (start it with taas-server start)`);
  const args = [process.argv[1]!, 'start', '--take-over', '--data-dir', c.dataDir];
  if (opts.config) args.push('--config', opts.config);
  if (opts.logLevel) args.push('--log-level', opts.logLevel);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit', 'pipe'], detached: true });
  const status = child.stdio[3] as NodeJS.ReadableStream;
  const report = await new Promise<TakeOverReport | null>((resolve) => {
    let text = '';
    const timer = setTimeout(() => resolve(null), c.drainTimeout * 1000 + START_SLACK_MS).unref();
    status.setEncoding('utf8');
    status.on('data', (d: string) => (text += d));
    status.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(text.split('\n')[0] ?? '') as TakeOverReport);
      } catch {
        resolve(null);
      }
    });
  });
  child.unref();
  if (!report) throw new TaasError('TAAS_HANDOVER_FAILED', `the new daemon exited or went silent before taking over (exit ${child.exitCode ?? 'none yet'}); pid ${old.pid} keeps serving`);
  if (!report.ok) throw new TaasError('TAAS_HANDOVER_FAILED', `the new daemon did not start: ${report.why}; pid ${old.pid} keeps serving`);
  return `restarted: pid ${report.pid} serves now (${report.note || 'taken over'})`;
}
