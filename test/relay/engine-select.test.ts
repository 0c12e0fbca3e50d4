/**
 * Engine selection: auto picks splice where the addon loads, splice-or-fail, stream on request.
 * The "addon missing" case runs the compiled modules from a copy of dist/ that has no
 * build/Release beside it, in a child process, exactly as an install without a compiler would.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { engineAvailability, selectEngine } from '../../src/relay/engines/select.js';
import type { RelayEngine } from '../../src/relay/engine.js';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..', '..');

/** Collects what selectEngine logs. */
function logger(): { lines: string[]; info(o: object, m?: string): void } {
  const lines: string[] = [];
  return { lines, info: (_o: object, m?: string) => void lines.push(m ?? '') };
}

describe('engine selection on this machine (addon built)', () => {
  const engines: RelayEngine[] = [];
  afterAll(async () => {
    for (const e of engines) await e.shutdown();
  });

  it('reports splice available', () => {
    expect(engineAvailability()).toEqual({ splice: true });
  });

  for (const [choice, name] of [['auto', 'splice'], ['splice', 'splice'], ['stream', 'stream']] as const) {
    it(`relayEngine=${choice} gives the ${name} engine, logged once, with no fallback note`, async () => {
      const log = logger();
      const { engine, note } = await selectEngine(choice, log);
      engines.push(engine);
      expect(engine.name).toBe(name);
      expect(note).toBeUndefined();
      expect(log.lines).toEqual([`relay engine: ${name} (config relayEngine=${choice})`]);
    });
  }
});

describe('engine selection where the addon is missing', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'taas-noaddon-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** Runs selectEngine(choice) from a copy of dist/ with no build/ beside it; prints JSON. */
  async function selectInCopy(choice: string): Promise<{ name?: string; note?: string; code?: string; message?: string; avail: unknown }> {
    const dist = path.join(tmp, 'dist');
    if (!fs.existsSync(dist)) {
      // All of dist/ (whatever the engines import), but no build/ beside it: no addon.
      fs.cpSync(path.join(root, 'dist'), dist, { recursive: true, filter: (f) => !f.endsWith('.map') });
      fs.writeFileSync(path.join(tmp, 'package.json'), '{"type":"module"}');
    }
    const script = `
      import { selectEngine, engineAvailability } from ${JSON.stringify(path.join(dist, 'relay/engines/select.js'))};
      const avail = engineAvailability();
      try {
        const { engine, note } = await selectEngine(${JSON.stringify(choice)}, { info() {} });
        console.log(JSON.stringify({ name: engine.name, note, avail }));
        await engine.shutdown();
      } catch (e) {
        console.log(JSON.stringify({ code: e.code, message: e.message, avail }));
      }`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: tmp });
    return JSON.parse(stdout);
  }

  it('auto falls back to stream with one note naming the missing addon', async () => {
    const r = await selectInCopy('auto');
    expect(r.name).toBe('stream');
    expect(r.note).toMatch(/^relay engine: stream, because the splice engine is unavailable: native addon not built/);
    expect(r.avail).toEqual({ splice: false, why: expect.stringContaining('taas_splice.node missing') });
  });

  it('splice fails with TAAS_ENGINE_UNAVAILABLE in one line', async () => {
    const r = await selectInCopy('splice');
    expect(r.code).toBe('TAAS_ENGINE_UNAVAILABLE');
    expect(r.message).toMatch(/^relayEngine is splice but the splice engine is unavailable: native addon not built/);
    expect(r.message).not.toContain('\n');
  });

  it('stream is unaffected', async () => {
    expect((await selectInCopy('stream')).name).toBe('stream');
  });
});
