/** Chooses the store once at start-up: Redis when `redis` is configured, else the embedded one. */
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { FileStore } from './file-store.js';
import { SecretBox } from './secret-box.js';
import type { Store } from './types.js';

export function secretKeyFile(config: Readonly<Config>): string {
  return path.resolve(config.secretKeyFile ?? path.join(config.dataDir, 'secret.key'));
}

export function openSecretBox(config: Readonly<Config>): SecretBox {
  return SecretBox.fromFile(secretKeyFile(config));
}

export async function openStore(config: Readonly<Config>, box: SecretBox, logger: Logger, opts: { watch?: boolean } = {}): Promise<Store> {
  if (!config.redis) return FileStore.open(path.resolve(config.dataDir), box, logger, opts);
  const { RedisStore } = await import('./redis-store.js');
  return RedisStore.connect(config.redis, box, logger, config.nodeId);
}
