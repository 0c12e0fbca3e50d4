/**
 * The folders of src/ depend one way. This test reads every import in src/ (static, dynamic,
 * type-only and re-exports alike) and fails when a room imports a room that LAYERS does not
 * allow, or when a room exists that LAYERS does not name. The README's picture ("How it is
 * built") is this table drawn; change both together.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(import.meta.dirname, '../../src');

/** Each room and the rooms it may import (its own files are always allowed). */
const LAYERS: Record<string, readonly string[]> = {
  errors: [],
  util: ['errors'],
  // config validates the defaultPolicy with protocol's policy rules (protocol uses only errors).
  config: ['errors', 'protocol'],
  protocol: ['errors'],
  store: ['errors', 'util', 'config', 'protocol'],
  observe: ['errors', 'util', 'config', 'protocol', 'store'],
  auth: ['errors', 'config', 'protocol', 'store'],
  tls: ['errors', 'util', 'config', 'protocol'],
  entries: ['errors', 'config', 'protocol', 'store', 'auth', 'tls'],
  relay: ['errors', 'util', 'config', 'protocol', 'observe', 'store'],
  registrar: ['errors', 'util', 'config', 'protocol', 'observe', 'store', 'auth', 'tls', 'relay'],
  cluster: ['errors', 'config', 'protocol', 'observe', 'store', 'relay'],
  handover: ['errors', 'config', 'protocol', 'observe', 'relay'],
  admin: ['errors', 'util', 'config', 'protocol', 'observe', 'store', 'auth', 'tls', 'entries'],
  // The agent moves octets with the relay's engines (relay/engine.ts, relay/engines/), nothing else of relay/; tls/ for --tls and --acme.
  agent: ['errors', 'util', 'config', 'protocol', 'observe', 'auth', 'relay', 'tls'],
  daemon: ['errors', 'util', 'config', 'protocol', 'observe', 'store', 'auth', 'tls', 'entries', 'relay', 'registrar', 'cluster', 'admin', 'handover'],
  cli: ['errors', 'util', 'config', 'protocol', 'observe', 'store', 'auth', 'tls', 'entries', 'relay', 'admin', 'agent'],
};

/**
 * Imports allowed only as `await import(...)` inside a function, so that they load only when
 * that code runs: the CLI loads the daemon for `start` alone, never for `entries list` & co.
 */
const LAZY: Record<string, readonly string[]> = {
  cli: ['daemon'],
};

interface Import {
  from: string;
  to: string;
  dynamic: boolean;
}

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** The room of a file: its first folder under src/, or the file's name for a top-level file. */
function roomOf(file: string): string {
  const parts = path.relative(SRC, file).split(path.sep);
  return parts.length === 1 ? parts[0]!.replace(/\.(ts|js)$/, '') : parts[0]!;
}

function importsOf(file: string): Import[] {
  const text = fs.readFileSync(file, 'utf8');
  const out: Import[] = [];
  const add = (spec: string, dynamic: boolean) => {
    if (!spec.startsWith('.')) return; // packages and node: builtins
    out.push({ from: file, to: path.resolve(path.dirname(file), spec).replace(/\.js$/, '.ts'), dynamic });
  };
  for (const m of text.matchAll(/^\s*(?:import|export)\s[^'"]*?\bfrom\s*'([^']+)'/gms)) add(m[1]!, false);
  for (const m of text.matchAll(/^\s*import\s*'([^']+)'/gm)) add(m[1]!, false);
  for (const m of text.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g)) add(m[1]!, true);
  return out;
}

const files = sources(SRC);
const imports = files.flatMap(importsOf);

describe('layering of src/', () => {
  it('finds the imports it checks (the parser is not blind)', () => {
    expect(imports.length).toBeGreaterThan(200);
    expect(imports.some((i) => i.from.endsWith('daemon.ts') && i.to.endsWith('relay/relay.ts'))).toBe(true);
    expect(imports.some((i) => i.dynamic && i.to.endsWith('admin/server.ts'))).toBe(true);
  });

  it('names every room', () => {
    const rooms = new Set(files.map(roomOf));
    expect([...rooms].filter((r) => !(r in LAYERS))).toEqual([]);
  });

  it('every import goes to a room the importer may use', () => {
    const wrong: string[] = [];
    for (const i of imports) {
      const a = roomOf(i.from);
      const b = roomOf(i.to);
      if (a === b || LAYERS[a]?.includes(b) || (i.dynamic && LAZY[a]?.includes(b))) continue;
      const lazy = LAZY[a]?.length ? `; lazily, by await import(): ${LAZY[a]!.join(', ')}` : '';
      wrong.push(`${path.relative(SRC, i.from)} imports ${path.relative(SRC, i.to)} (${a} may use ${LAYERS[a]?.join(', ') || 'nothing'}${lazy})`);
    }
    expect(wrong).toEqual([]);
  });

  it('outside relay/, only the engines are used: engine.ts and engines/ (the agent copies octets with them)', () => {
    const wrong = imports
      .filter((i) => roomOf(i.from) !== 'relay' && roomOf(i.to) === 'relay' && ['agent'].includes(roomOf(i.from)))
      .map((i) => path.relative(SRC, i.to))
      .filter((to) => to !== path.join('relay', 'engine.ts') && !to.startsWith(path.join('relay', 'engines') + path.sep));
    expect(wrong).toEqual([]);
  });

  it('the table has no cycle (one direction)', () => {
    const visiting = new Set<string>();
    const done = new Set<string>();
    const cycle: string[] = [];
    const visit = (r: string, trail: string[]) => {
      if (done.has(r)) return;
      if (visiting.has(r)) {
        cycle.push([...trail, r].join(' -> '));
        return;
      }
      visiting.add(r);
      for (const n of [...(LAYERS[r] ?? []), ...(LAZY[r] ?? [])]) visit(n, [...trail, r]);
      visiting.delete(r);
      done.add(r);
    };
    for (const r of Object.keys(LAYERS)) visit(r, []);
    expect(cycle).toEqual([]);
  });

  it('the CLI loads neither the daemon, the relay, the registrar nor the admin server unless it starts the daemon', () => {
    // Everything a CLI command loads before its action runs: the static closure of the programs.
    const loaded = new Set<string>();
    const todo = [path.join(SRC, 'cli/server.ts'), path.join(SRC, 'cli/agent.ts')];
    while (todo.length) {
      const f = todo.pop()!;
      if (loaded.has(f)) continue;
      loaded.add(f);
      for (const i of importsOf(f)) if (!i.dynamic) todo.push(i.to);
    }
    const heavy = [...loaded].map((f) => path.relative(SRC, f)).filter((f) => f === 'daemon.ts' || f === 'relay/relay.ts' || f.startsWith('registrar/') || f === 'admin/server.ts');
    expect(heavy).toEqual([]);
  });
});
