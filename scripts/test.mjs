// `npm test`: builds (tests run the compiled bin/ through real processes), runs vitest, and
// ends with the one line CI reads, `N passed, N failed`, from vitest's JSON report.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const build = spawnSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);

const report = path.join(os.tmpdir(), `taas-vitest-${process.pid}.json`);
const args = ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)];
const r = spawnSync('npx', args, { stdio: 'inherit', env: { ...process.env, FORCE_COLOR: process.env.CI ? '0' : process.env.FORCE_COLOR } });
let passed = 0;
let failed = 0;
try {
  const j = JSON.parse(fs.readFileSync(report, 'utf8'));
  passed = j.numPassedTests ?? 0;
  // A suite that fails before its tests run (a throwing beforeAll) counts as one failure.
  failed = j.numFailedTests || j.numFailedTestSuites || 0;
  fs.rmSync(report, { force: true });
} catch {
  failed = failed || 1;
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(r.status ?? 1);
