/**
 * DNS-01 through the operator's hook: `HOOK add RECORD VALUE` before the CA is told to look,
 * `HOOK remove RECORD VALUE` after. The hook talks to the DNS provider and returns only once
 * the TXT record is published (its exit status is the answer). Bounded in time.
 */
import { execFile } from 'node:child_process';
import { TaasError } from '../../errors.js';
import { dns01RecordName } from '../../protocol/index.js';

/** Provider APIs plus propagation take tens of seconds; two minutes bounds a hung hook. */
const HOOK_TIMEOUT_MS = 120_000;

export function runDns01Hook(hook: string, action: 'add' | 'remove', domain: string, value: string): Promise<void> {
  const record = dns01RecordName(domain);
  return new Promise((resolve, reject) => {
    execFile(hook, [action, record, value], { timeout: HOOK_TIMEOUT_MS, maxBuffer: 64 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve();
      const first = (stderr || stdout || err.message).trim().split('\n')[0] ?? '';
      const why = err.killed ? `did not finish within ${HOOK_TIMEOUT_MS / 1000} s` : `failed (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
      reject(new TaasError('TAAS_ACME_HOOK_FAILED', `DNS-01 hook ${hook} ${action} ${record} ${why}: ${first}`));
    });
  });
}
