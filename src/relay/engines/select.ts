/**
 * The relay engine is chosen once, at start-up, from config `relayEngine`:
 * - `auto`: splice where the native addon loads on Linux, else stream, with a note saying why
 *   (the daemon logs it once);
 * - `splice`: the native engine or a TaasError('TAAS_ENGINE_UNAVAILABLE') in one line;
 * - `stream`: the JavaScript engine.
 */
import { TaasError } from '../../errors.js';
import type { RelayEngine } from '../engine.js';
import { loadAddon, SpliceEngine } from './splice.js';
import { StreamEngine } from './stream.js';

export type EngineChoice = 'auto' | 'splice' | 'stream';

/** The smallest logger surface used here (pino's Logger satisfies it). */
export interface EngineLogger {
  info(obj: object, msg?: string): void;
}

/** Whether the splice engine can run here, and if not, why (for `--version` and the log). */
export function engineAvailability(): { splice: boolean; why?: string } {
  const { addon, why } = loadAddon();
  return addon ? { splice: true } : { splice: false, why: why ?? 'unknown reason' };
}

function makeSplice(): RelayEngine {
  try {
    return new SpliceEngine();
  } catch (e) {
    // The addon loaded but its threads or epoll sets could not be created (limits, seccomp).
    throw new TaasError('TAAS_ENGINE_UNAVAILABLE', `relay engine splice cannot start: ${(e as Error).message.split('\n')[0]}`, { cause: e });
  }
}

export async function selectEngine(choice: EngineChoice, logger: EngineLogger): Promise<{ engine: RelayEngine; note?: string }> {
  if (choice === 'stream') {
    logger.info({ engine: 'stream' }, 'relay engine: stream (config relayEngine=stream)');
    return { engine: new StreamEngine() };
  }
  const a = engineAvailability();
  if (choice === 'splice') {
    if (!a.splice) throw new TaasError('TAAS_ENGINE_UNAVAILABLE', `relayEngine is splice but the splice engine is unavailable: ${a.why}`);
    const engine = makeSplice();
    logger.info({ engine: 'splice' }, 'relay engine: splice (config relayEngine=splice)');
    return { engine };
  }
  if (a.splice) {
    try {
      const engine = makeSplice();
      logger.info({ engine: 'splice' }, 'relay engine: splice (config relayEngine=auto)');
      return { engine };
    } catch (e) {
      return { engine: new StreamEngine(), note: `relay engine: stream, because the splice engine failed to start (${(e as Error).message})` };
    }
  }
  return { engine: new StreamEngine(), note: `relay engine: stream, because the splice engine is unavailable: ${a.why}` };
}
