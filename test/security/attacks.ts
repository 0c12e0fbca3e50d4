/** Helpers shared by the credential attacks: parallel code sprays and the stored auth state. */
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import type { AgentFile } from '../../src/protocol/agent-file.js';
import type { Reply, TestDaemon } from './daemon.js';

export interface Attempt {
  result: string;
  from: string;
}

/** Sends every code with `parallel` requests in flight over keep-alive connections. */
export async function spray(d: TestDaemon, agent: AgentFile, codes: string[], parallel: number): Promise<Reply[]> {
  const pool = new https.Agent({ keepAlive: true, maxSockets: parallel });
  const out: Reply[] = [];
  let next = 0;
  const worker = async () => {
    while (next < codes.length) {
      const code = codes[next++]!;
      out.push(await d.register(agent, agent.labels[0]!, code, pool));
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  pool.destroy();
  return out;
}

/** The auth state of an ID as state.json holds it (failures in a row, lock end). */
export function authState(d: TestDaemon, id: string): { failures: number; lockedUntil: number } | undefined {
  const state = JSON.parse(fs.readFileSync(path.join(d.dataDir, 'state.json'), 'utf8'));
  return state.auth?.[id];
}

