/**
 * The error registry and its documentation agree: every code of src/errors.ts is in
 * docs/errors.md with its HTTP status, no undocumented or stale code is listed, and the admin
 * API's own list (docs/admin-api.md) names only real codes, with the statuses of the source.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, TaasError, type ErrorCode } from '../../src/errors.js';

const CODES = Object.keys(ERROR_CODES) as ErrorCode[];

/** `| \`CODE\` | status | ...` rows of a markdown table. */
function rows(file: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of fs.readFileSync(new URL(`../../docs/${file}`, import.meta.url), 'utf8').split('\n')) {
    const m = /^\|\s*`(TAAS_[A-Z_]+)`\s*\|\s*([^|]+?)\s*\|/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

/** The documented status: a number, or — for codes that do not cross HTTP (default 500). */
function statusOf(code: ErrorCode): string {
  const s = new TaasError(code).status;
  return s === 500 && code !== 'TAAS_INTERNAL' ? '—' : String(s);
}

describe('error code documentation', () => {
  it('docs/errors.md lists exactly the codes of src/errors.ts, with their statuses', () => {
    const doc = rows('errors.md');
    expect([...doc.keys()].sort()).toEqual([...CODES].sort());
    for (const c of CODES) expect(doc.get(c), c).toBe(statusOf(c));
  });

  it('docs/admin-api.md lists the admin codes, each a real code with the source status', () => {
    const doc = rows('admin-api.md');
    expect(doc.size).toBeGreaterThan(10);
    for (const [code, status] of doc) {
      expect(CODES, code).toContain(code);
      expect(status.split(/\s+/)[0], code).toBe(statusOf(code as ErrorCode));
    }
    for (const c of CODES.filter((x) => /ADMIN|FORBIDDEN|CSRF|PRECONDITION|MEDIA|PATCH|ENTRY/.test(x))) expect([...doc.keys()], c).toContain(c);
  });
});
