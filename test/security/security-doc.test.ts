/**
 * SECURITY.md agrees with the code: its tables of limits are exactly what limits-table.ts
 * generates from src/config/schema.ts and the bound constants, and every config key is placed
 * (a limit, a security switch, or explicitly not a limit). To regenerate the tables after a
 * change: `TAAS_WRITE_SECURITY_MD=1 npx vitest run test/security/security-doc.test.ts`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_KEYS } from '../../src/config/schema.js';
import { ROOT } from './daemon.js';
import { LISTED, NOT_LIMITS, generatedBlock } from './limits-table.js';

const FILE = path.join(ROOT, 'SECURITY.md');
const BLOCK = /<!-- limits:begin[\s\S]*?<!-- limits:end -->/;

describe('SECURITY.md', () => {
  if (process.env.TAAS_WRITE_SECURITY_MD === '1') {
    fs.writeFileSync(FILE, fs.readFileSync(FILE, 'utf8').replace(BLOCK, generatedBlock()));
  }

  it('holds the generated tables of limits, unchanged', () => {
    const doc = fs.readFileSync(FILE, 'utf8');
    const block = BLOCK.exec(doc)?.[0];
    expect(block, 'SECURITY.md lacks the limits block').toBeDefined();
    expect(block, 'SECURITY.md is out of date: regenerate with TAAS_WRITE_SECURITY_MD=1 (see this test file)').toBe(generatedBlock());
  });

  it('places every config key: a limit, a switch, or not a limit', () => {
    const placed = new Set<string>([...LISTED, ...NOT_LIMITS]);
    const unplaced = CONFIG_KEYS.filter((k) => !placed.has(k));
    expect(unplaced, 'new config keys: add them to WHEN_HIT, SWITCHES or NOT_LIMITS in test/security/limits-table.ts').toEqual([]);
    expect(LISTED.filter((k) => NOT_LIMITS.includes(k))).toEqual([]);
    expect([...placed].filter((k) => !(CONFIG_KEYS as string[]).includes(k))).toEqual([]);
  });

  it('names the four parties of the threat model and the key-loss consequence', () => {
    const doc = fs.readFileSync(FILE, 'utf8');
    for (const h of ['The relay operator', 'A network attacker', 'A stranger', 'A compromised hidden server']) expect(doc).toContain(`### ${h}`);
    expect(doc).toMatch(/secret\.key/);
    expect(doc).toMatch(/store rotate-key/);
  });
});
