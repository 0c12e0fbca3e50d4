/**
 * Finds, reads and evaluates a config file, applies TAAS_* environment overrides and flags,
 * and validates the result once. Discovery order: --config, TAAS_CONFIG,
 * /etc/taas-server/config.{ts,js,json}, ./local.{ts,js,json}; none found → embedded default.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { TaasError, oneLine } from '../errors.js';
import { CONFIG_KEYS, envName, validate, type Config } from './schema.js';

export interface LoadedConfig {
  config: Readonly<Config>;
  /** The file used, or null for the embedded default. */
  file: string | null;
}

const EXTENSIONS = ['ts', 'js', 'json'] as const;

export function discoverConfigFile(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string | null {
  if (explicit) return path.resolve(cwd, explicit);
  if (env.TAAS_CONFIG) return path.resolve(cwd, env.TAAS_CONFIG);
  const candidates = [
    ...EXTENSIONS.map((e) => `/etc/taas-server/config.${e}`),
    ...EXTENSIONS.map((e) => path.join(cwd, `local.${e}`)),
  ];
  return candidates.find((f) => fs.existsSync(f)) ?? null;
}

/** Compiles a .ts config with esbuild (type-only imports are erased; relative imports bundled). */
async function importTs(file: string): Promise<unknown> {
  const esbuild = await import('esbuild');
  const result = esbuild.buildSync({
    entryPoints: [file],
    bundle: true,
    platform: 'node',
    format: 'esm',
    write: false,
    packages: 'external',
    logLevel: 'silent',
    target: 'node20',
  });
  const code = result.outputFiles[0]!.text;
  return import('data:text/javascript;base64,' + Buffer.from(code).toString('base64'));
}

function pickExport(mod: unknown): unknown {
  const m = mod as Record<string, unknown>;
  for (const name of ['default', 'config', 'options']) {
    if (m && m[name] && typeof m[name] === 'object') {
      const v = m[name] as Record<string, unknown>;
      // CommonJS modules imported from ESM put module.exports under default.
      if (name === 'default' && v.options && typeof v.options === 'object') return v.options;
      return v;
    }
  }
  return mod;
}

export async function readConfigFile(file: string): Promise<Record<string, unknown>> {
  if (!fs.existsSync(file)) throw new TaasError('TAAS_CONFIG_UNREADABLE', `config file ${file}: no such file`);
  let value: unknown;
  try {
    if (file.endsWith('.json')) value = JSON.parse(fs.readFileSync(file, 'utf8'));
    else if (file.endsWith('.ts') || file.endsWith('.mts')) value = pickExport(await importTs(file));
    else if (/\.(c|m)?js$/.test(file)) value = pickExport(await import(pathToFileURL(file).href));
    else throw new Error('the file must end in .ts, .js or .json');
  } catch (e) {
    if (e instanceof TaasError) throw e;
    throw new TaasError('TAAS_CONFIG_UNREADABLE', `config file ${file}: ${oneLine(e)}`, { cause: e });
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new TaasError('TAAS_CONFIG_UNREADABLE', `config file ${file}: it must export an object of settings`);
  }
  return { ...(value as Record<string, unknown>) };
}

/** TAAS_REDIS holding a JSON object; a bad one is named with its key, its value (password masked) and what is allowed. */
function redisJson(name: string, v: string): unknown {
  try {
    return JSON.parse(v);
  } catch (e) {
    const shown = v.replace(/("password"\s*:\s*")((?:[^"\\]|\\.)*)"/g, '$1***"');
    throw new TaasError('TAAS_CONFIG_INVALID', `${name} (config key redis): ${shown} is not allowed (${oneLine(e)}); expected a redis:// or rediss:// URL, or a JSON object such as {"host": "h", "port": 6379}`);
  }
}

export function envOverrides(env: NodeJS.ProcessEnv = process.env): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of CONFIG_KEYS) {
    const v = env[envName(key)];
    if (v === undefined || v === '') continue;
    out[key] = key === 'redis' && v.trim().startsWith('{') ? redisJson(envName(key), v) : v;
  }
  return out;
}

export interface LoadOptions {
  configFile?: string;
  /** Values from command-line flags; they win over file and environment. */
  flags?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export async function loadConfig(opts: LoadOptions = {}): Promise<LoadedConfig> {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const file = discoverConfigFile(opts.configFile, env, cwd);
  const fromFile = file ? await readConfigFile(file) : {};
  const flags = Object.fromEntries(Object.entries(opts.flags ?? {}).filter(([, v]) => v !== undefined));
  const merged = { ...fromFile, ...envOverrides(env), ...flags };
  const config = validate(merged);
  return { config, file };
}

/** The config as printable JSON with secrets masked. */
export function maskConfig(config: Readonly<Config>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...config };
  if (out.keyData) out.keyData = '(PEM, masked)';
  if (typeof out.redis === 'string') out.redis = (out.redis as string).replace(/\/\/([^@/]*)@/, '//***@');
  else if (out.redis && typeof out.redis === 'object') {
    const r = { ...(out.redis as Record<string, unknown>) };
    if (r.password) r.password = '***';
    if (typeof r.url === 'string') r.url = r.url.replace(/\/\/([^@/]*)@/, '//***@');
    out.redis = r;
  }
  return out;
}
