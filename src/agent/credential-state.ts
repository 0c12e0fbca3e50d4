/**
 * What an agent keeps of its credentials across a restart: the newest TAAS-Session token and
 * the last TOTP step it spent, in one small JSON file (mode 0600, default `<agent file>.state`).
 *
 * Why: the relay accepts each (ID, step) once. A process restarted within the step its
 * predecessor spent (systemctl restart, a crash loop, an upgrade) would present the spent code,
 * get 401 and wait out the step with no responder. With this file the new process registers at
 * once with the token (valid sessionLifetime, not single use, bound to the same source
 * address), and without a usable token it knows the step is spent and uses the next step's code
 * (inside the relay's ±1 window) instead of replaying. The token is no more than the agent file
 * already grants (the file holds the TOTP secret itself); it dies with the secret.
 *
 * Written crash-safe (temp file, fsync, rename), so a kill -9 mid-write leaves the old state.
 * A state file that cannot be read or written is not an error: the agent runs as before and
 * says so once.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface SavedCredentials {
  /** The ID the state belongs to: a state left by another agent file is ignored. */
  id: string;
  session: string | null;
  lastStep: number;
}

export class CredentialState {
  private warned = false;

  constructor(
    readonly file: string,
    private readonly warn: (msg: string) => void = () => undefined,
  ) {}

  /** The saved state for `id`, or null when there is none (or it is unreadable, or another ID's). */
  load(id: string): SavedCredentials | null {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.once(`cannot read credential state ${this.file} (${(e as NodeJS.ErrnoException).code}); starting without it`);
      return null;
    }
    try {
      const v = JSON.parse(text) as Partial<SavedCredentials>;
      if (v.id !== id || !Number.isInteger(v.lastStep)) return null;
      return { id, session: typeof v.session === 'string' ? v.session : null, lastStep: v.lastStep! };
    } catch {
      this.once(`credential state ${this.file} is not JSON; starting without it`);
      return null;
    }
  }

  save(state: SavedCredentials): void {
    const tmp = path.join(path.dirname(this.file), `.${path.basename(this.file)}.${process.pid}.tmp`);
    try {
      // A leftover of a crash is removed; 'wx' then never writes through a planted file or link.
      fs.rmSync(tmp, { force: true });
      const fd = fs.openSync(tmp, 'wx', 0o600);
      try {
        fs.writeSync(fd, JSON.stringify(state) + '\n');
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, this.file);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      this.once(`cannot write credential state ${this.file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); a restart within a TOTP step will wait for the next one`);
    }
  }

  private once(msg: string): void {
    if (this.warned) return;
    this.warned = true;
    this.warn(msg);
  }
}
