/**
 * `taas-server store ...`: operations on the store as a whole.
 * - `rotate-key`: appends a new key to the secret key file and re-seals every entry's TOTP
 *   secret with it (a running daemon picks the new key up by itself: its SecretBox re-reads the
 *   file when it meets an unknown key id or the file changes). `--drop-old` then removes the
 *   old keys from the file, so that the file no longer opens old copies of the store.
 * - `export [--out FILE]` / `import FILE`: entries as JSON lines (src/store/migrate.ts), to
 *   move between the embedded store and Redis. The export holds secrets in plaintext.
 */
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { TaasError, isTaasError } from '../errors.js';
import { createLogger } from '../observe/logger.js';
import { FileStore } from '../store/file-store.js';
import { exportEntries, importEntries } from '../store/migrate.js';
import { openStore, secretKeyFile } from '../store/open.js';
import { SecretBox } from '../store/secret-box.js';
import type { Store } from '../store/types.js';

interface GlobalOpts {
  config?: string;
  dataDir?: string;
  logLevel?: string;
}

/** Attempts per entry when a concurrent writer (daemon, admin API) changes it under us. */
const RESEAL_TRIES = 5;

async function configOf(cmd: Command): Promise<Readonly<Config>> {
  const o = cmd.optsWithGlobals() as GlobalOpts;
  return (await loadConfig({ configFile: o.config, flags: { dataDir: o.dataDir, logLevel: o.logLevel } })).config;
}

/** The configured store, opened with `box`; the embedded one without watching and without touching history. */
async function open(c: Readonly<Config>, box: SecretBox): Promise<Store> {
  const silent = createLogger({ level: 'error', pretty: false, destination: process.stderr as never });
  return c.redis ? openStore(c, box, silent) : FileStore.open(path.resolve(c.dataDir), box, silent, { watch: false, readOnlyState: true });
}

async function using<T>(c: Readonly<Config>, box: SecretBox, fn: (s: Store) => Promise<T>): Promise<T> {
  const store = await open(c, box);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

export interface RotateResult {
  keyId: string;
  resealed: number;
  keysKept: number;
}

/**
 * Rotation, in an order that never leaves a secret unreadable: every entry is opened with the
 * current file first (nothing changes if one cannot be); the new key is appended (old ones stay,
 * so every process can still open what is sealed); each entry is rewritten, which seals it with
 * the new key; only then, if asked, the old keys are dropped.
 */
export async function rotateKey(c: Readonly<Config>, opts: { reseal: boolean; dropOld: boolean }): Promise<RotateResult> {
  const file = secretKeyFile(c);
  if (!fs.existsSync(file)) throw new TaasError('TAAS_FILE_UNREADABLE', `no secret key file at ${file}: nothing is sealed yet (the daemon creates it on first start)`);
  if (opts.dropOld && !opts.reseal) throw new TaasError('TAAS_BAD_REQUEST', '--drop-old needs the re-seal: old keys still open stored secrets until then');
  await using(c, SecretBox.fromFile(file), (s) => s.listEntries());
  const box = SecretBox.addKey(file);
  const resealed = opts.reseal ? await resealAll(c, box) : 0;
  const final = opts.dropOld ? SecretBox.keepOnlyCurrent(file) : SecretBox.fromFile(file);
  return { keyId: box.currentKeyId, resealed, keysKept: final.keyIds.length };
}

async function* linesOf(file: string): AsyncIterable<string> {
  const input = file === '-' ? process.stdin : fs.createReadStream(file, { encoding: 'utf8' });
  yield* readline.createInterface({ input, crlfDelay: Infinity });
}

/** Adds `store rotate-key`, `store export` and `store import` to the program. */
export function addStoreCommands(program: Command): void {
  const store = program.command('store').description('the store as a whole: key rotation, export and import');
  store
    .command('rotate-key')
    .description('append a new key to the secret key file and re-seal every TOTP secret with it')
    .option('--no-reseal', 'only append the key (multi-node: copy the key file to every node, then run again with --reseal-only)')
    .option('--reseal-only', 're-seal with the newest key already in the file, without adding one')
    .option('--drop-old', 'after re-sealing, remove the old keys from the file')
    .action(async (o: { reseal: boolean; resealOnly?: boolean; dropOld?: boolean }, cmd: Command) => {
      const c = await configOf(cmd);
      const r = o.resealOnly ? await resealOnly(c, !!o.dropOld) : await rotateKey(c, { reseal: o.reseal, dropOld: !!o.dropOld });
      console.log(`key:       ${r.keyId} (newest; seals from now on)\nre-sealed: ${r.resealed} entr${r.resealed === 1 ? 'y' : 'ies'}\nkey file:  ${secretKeyFile(c)} (${r.keysKept} key${r.keysKept === 1 ? '' : 's'})`);
    });
  store
    .command('export')
    .description('write every entry as a JSON line, SECRETS IN PLAINTEXT (file mode 0600); protect and delete it after use')
    .option('--out <file>', 'file to write (default: standard output)')
    .action(async (o: { out?: string }, cmd: Command) => {
      const c = await configOf(cmd);
      await using(c, SecretBox.fromFile(secretKeyFile(c)), async (s) => {
        let n = 0;
        // The mode given to open applies only to a new file: an existing one is narrowed first.
        if (o.out && fs.existsSync(o.out)) fs.chmodSync(o.out, 0o600);
        const fd = o.out ? fs.openSync(o.out, 'w', 0o600) : 1;
        try {
          for await (const line of exportEntries(s)) {
            fs.writeSync(fd, line);
            n++;
          }
        } finally {
          if (o.out) fs.closeSync(fd);
        }
        if (o.out) console.log(`exported ${n} entr${n === 1 ? 'y' : 'ies'} to ${path.resolve(o.out)} (holds secrets; mode 0600)`);
      });
    });
  store
    .command('import <file>')
    .description('create or update entries from JSON lines (checked whole before any change; "-" reads standard input)')
    .action(async (file: string, _o, cmd: Command) => {
      const c = await configOf(cmd);
      if (file !== '-' && !fs.existsSync(file)) throw new TaasError('TAAS_FILE_UNREADABLE', `${file}: no such file`);
      const r = await using(c, SecretBox.fromFile(secretKeyFile(c)), (s) => importEntries(s, linesOf(file)));
      console.log(`created ${r.created}, updated ${r.updated}, unchanged ${r.skipped}`);
    });
}

/** Second step of a multi-node rotation: re-seal with the newest key the file already holds. */
async function resealOnly(c: Readonly<Config>, dropOld: boolean): Promise<RotateResult> {
  const file = secretKeyFile(c);
  if (!fs.existsSync(file)) throw new TaasError('TAAS_FILE_UNREADABLE', `no secret key file at ${file}`);
  const box = SecretBox.fromFile(file);
  const resealed = await resealAll(c, box);
  const final = dropOld ? SecretBox.keepOnlyCurrent(file) : box;
  return { keyId: box.currentKeyId, resealed, keysKept: final.keyIds.length };
}

/** Rewrites every entry (same content, version checked), which seals its secret with the box's newest key. */
async function resealAll(c: Readonly<Config>, box: SecretBox): Promise<number> {
  return using(c, box, async (store) => {
    let n = 0;
    for (const { id } of await store.listEntries()) {
      for (let attempt = 1; ; attempt++) {
        const cur = await store.getEntry(id);
        if (!cur) break; // removed meanwhile: nothing to re-seal
        try {
          await store.updateEntry(cur, cur.version);
          n++;
          break;
        } catch (e) {
          if (!isTaasError(e, 'TAAS_PRECONDITION_FAILED') || attempt >= RESEAL_TRIES) throw e;
        }
      }
    }
    return n;
  });
}
