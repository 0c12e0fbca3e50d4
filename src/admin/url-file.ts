/**
 * Where the admin server writes its URL for the CLI (`admin.url` in the data dir). Its own
 * module so the admin client (loaded by CLI commands) does not load the admin server.
 */
import path from 'node:path';

export function adminUrlFile(dataDir: string): string {
  return path.resolve(dataDir, 'admin.url');
}
