/** The OpenAPI document and the routes agree both ways: every API route is described, every description is a route. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAdmin } from '../../src/admin/server.js';
import { openApiDocument } from '../../src/admin/openapi.js';
import { validate } from '../../src/config/schema.js';
import { fixedConfig } from '../../src/config/view.js';
import { EntryService } from '../../src/entries/entry-service.js';
import { FileStore } from '../../src/store/file-store.js';
import { SecretBox } from '../../src/store/secret-box.js';

let dir: string;
let store: FileStore;
let built: Awaited<ReturnType<typeof buildAdmin>>;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'taas-admin-openapi-'));
  const config = validate({ dataDir: dir, adminPort: 0 });
  store = await FileStore.open(dir, SecretBox.fromFile(path.join(dir, 'secret.key')), undefined, { watch: false });
  const { Registry } = await import('prom-client');
  built = await buildAdmin({ config: fixedConfig(config), store, entries: new EntryService(store, { config: fixedConfig(config), tls: () => null }), live: () => [], logger: pino({ level: 'silent' }), metrics: new Registry(), setLogLevel: () => undefined });
  await built.app.ready();
});
afterAll(async () => {
  await built?.app.close();
  await store?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** fastify's `/api/entries/:id` → OpenAPI's `/api/entries/{id}`. */
const toOpenApi = (url: string) => url.replace(/:([A-Za-z]+)/g, '{$1}');

describe('OpenAPI document', () => {
  it('describes every route of the admin server, and only those', () => {
    const doc = openApiDocument() as { paths: Record<string, Record<string, unknown>> };
    const described = new Set<string>();
    for (const [p, ops] of Object.entries(doc.paths)) for (const m of Object.keys(ops)) if (m !== 'parameters') described.add(`${m.toUpperCase()} ${p}`);
    const served = new Set(
      built.routes
        .filter((r) => r.method !== 'HEAD' && r.method !== 'OPTIONS' && !r.url.includes('*') && r.url !== '/')
        .map((r) => `${r.method} ${toOpenApi(r.url)}`),
    );
    expect([...served].filter((r) => !described.has(r)), 'served but not described').toEqual([]);
    expect([...described].filter((r) => !served.has(r)), 'described but not served').toEqual([]);
  });
});
