/** The `--version` report: version, Node, and the relay engine the config selects. */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config/schema.js';
import { engineAvailability } from '../relay/engines/select.js';

function packageVersion(): string {
  try {
    const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
    return JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version as string;
  } catch {
    return 'unknown';
  }
}

export const VERSION = packageVersion();

export async function versionReport(c: Readonly<Config>): Promise<string> {
  const a = engineAvailability();
  const inUse = c.relayEngine === 'stream' || (c.relayEngine === 'auto' && !a.splice) ? 'stream' : 'splice';
  return [
    `taas-server ${VERSION}`,
    `node ${process.version} on ${process.platform}-${process.arch}`,
    `relay engine: ${inUse} (config relayEngine=${c.relayEngine}; splice ${a.splice ? 'available' : `unavailable: ${a.why ?? 'unknown reason'}`})`,
  ].join('\n');
}
