// `npm test`: provisions the Debian packages the tests drive (the list is scripts/
// install-test-deps.sh's), builds (tests run the compiled bin/ through real processes), runs
// vitest, and ends with the one line CI reads, `N passed, N failed`, from vitest's JSON report.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const deps = path.join(root, 'scripts', 'install-test-deps.sh');

/**
 * On Debian, the test packages that are missing (one dpkg-query, a few ms, so a provisioned
 * machine pays nothing); as root they are installed once, saying so in one line; otherwise the
 * run stops at once with one line naming the command. Elsewhere (no dpkg) nothing is checked.
 */
function provision() {
  if (!fs.existsSync('/usr/bin/dpkg-query')) return;
  const probe = spawnSync('bash', [deps, '--missing'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return;
  const missing = probe.stdout.trim();
  if (!missing) return;
  if (process.getuid?.() !== 0) {
    console.error(`npm test: missing Debian packages (${missing}); run: sudo scripts/install-test-deps.sh`);
    process.exit(1);
  }
  console.log(`npm test: installing missing test packages once: ${missing}`);
  const r = spawnSync('bash', [deps], { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (r.status !== 0) {
    process.stderr.write(`${r.stdout}${r.stderr}`);
    console.error('npm test: scripts/install-test-deps.sh failed (see above)');
    process.exit(1);
  }
  // npm ci ran before the compiler was here: the native engine the tests use is built now.
  const addon = path.join(root, 'build', 'Release', 'taas_splice.node');
  if (!fs.existsSync(addon)) {
    spawnSync('npm', ['run', '--silent', 'build:native'], { cwd: root, stdio: 'ignore' });
    if (!fs.existsSync(addon)) console.error('npm test: the native splice engine did not build; npm run build:native shows why');
  }
}

provision();
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
