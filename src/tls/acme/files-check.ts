/**
 * The files `acme` names, checked at start and by `config check`: a CA file that cannot be read
 * or a hook that cannot be run would otherwise surface only at the first order, minutes later,
 * as a log line. One line naming the key and the file.
 */
import fs from 'node:fs';
import type { Config } from '../../config/schema.js';
import { TaasError, oneLine } from '../../errors.js';

function pemFile(key: string, file: string): void {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new TaasError('TAAS_CONFIG_INVALID', `config key ${key}: ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? oneLine(e)})`);
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) throw new TaasError('TAAS_CONFIG_INVALID', `config key ${key}: ${file} holds no PEM certificate`);
}

export function checkAcmeFiles(config: Readonly<Config>): void {
  const a = config.acme;
  if (!a) return;
  if (a.caFile) pemFile('acme.caFile', a.caFile);
  if (a.rootFile) pemFile('acme.rootFile', a.rootFile);
  if (a.dns01Hook) {
    try {
      fs.accessSync(a.dns01Hook, fs.constants.X_OK);
    } catch (e) {
      throw new TaasError('TAAS_CONFIG_INVALID', `config key acme.dns01Hook: ${a.dns01Hook} cannot be run (${(e as NodeJS.ErrnoException).code ?? oneLine(e)})`);
    }
  }
}
