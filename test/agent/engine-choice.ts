/** The engine the in-process agents of a test file use (default: stream); agent-splice.test.ts sets splice. */
import type { RelayEngine } from '../../src/relay/engine.js';
import { StreamEngine } from '../../src/relay/engines/stream.js';

let factory: () => RelayEngine = () => new StreamEngine();

export function useAgentEngine(f: () => RelayEngine): void {
  factory = f;
}

export function agentEngine(): RelayEngine {
  return factory();
}
