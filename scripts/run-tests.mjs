// Runs the test suite with Node's built-in runner on the compiled output.
//   node scripts/run-tests.mjs            unit tests (dist/**/*.test.js) then e2e (dist/test/e2e)
//   node scripts/run-tests.mjs --unit     unit tests only
//   node scripts/run-tests.mjs --e2e      e2e tests only
//   node scripts/run-tests.mjs FILE.test.js... only these files
//   extra arguments are passed to `node --test` (e.g. --test-name-pattern=...)
// Skipped and todo tests are counted and listed at the end. With CI=true any of them fails the run,
// except a skip whose reason starts with "opt-in:" (a suite that needs hardware this host lacks
// and runs only when the developer names it, e.g. a real Firecracker binary on a KVM host).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const only = args.includes('--unit') ? 'unit' : args.includes('--e2e') ? 'e2e' : 'all';
// Test files named on the command line replace the search (they run as unit tests).
const named = args.filter((a) => /\.test\.m?js$/.test(a));
const passThrough = args.filter((a) => a !== '--unit' && a !== '--e2e' && !named.includes(a));

function find(dir, out = []) {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) find(path, out);
    else if (entry.endsWith('.test.js')) out.push(path);
  }
  return out;
}

const all = named.length > 0 ? named : find(join(root, 'dist')).sort();
const isE2e = (f) => f.includes(`${join('dist', 'test', 'e2e')}`);
const files = all.filter((f) => (only === 'unit' ? !isE2e(f) : only === 'e2e' ? isE2e(f) : true));
if (files.length === 0) {
  console.error('no test files found under dist/; run `npm run build` first');
  process.exit(1);
}
// e2e files boot VMs and start daemons: run them one file at a time so 2 cores are not oversubscribed.
const unit = files.filter((f) => !isE2e(f));
const e2e = files.filter(isE2e);
const ci = process.env.CI === 'true';
const reportDir = mkdtempSync(join(tmpdir(), 'hc-test-report-'));
const skipReporter = join(root, 'scripts', 'test-skip-reporter.mjs');
const mainReporter = process.stdout.isTTY ? 'spec' : 'tap';
// A runner started from inside another test run would otherwise skip every file and pass.
const childEnv = { ...process.env };
delete childEnv.NODE_TEST_CONTEXT;
let failed = false;
const skipped = [];
// Per-test time limits, so that a hung test fails with its name instead of holding the run until CI
// kills it: a unit test never needs minutes; an e2e test may boot several guests under TCG.
const limits = { unit: 300_000, e2e: 900_000 };
for (const [group, list, concurrency] of [['unit', unit, 2], ['e2e', e2e, 1]]) {
  if (list.length === 0) continue;
  console.log(`# ${group}: ${list.length} file(s)`);
  const skipFile = join(reportDir, `${group}.ndjson`);
  const reporters = ['--test-reporter', mainReporter, '--test-reporter-destination', 'stdout', '--test-reporter', skipReporter, '--test-reporter-destination', skipFile];
  const r = spawnSync(process.execPath, ['--test', `--test-concurrency=${concurrency}`, `--test-timeout=${limits[group]}`, ...reporters, ...passThrough, ...list], { stdio: 'inherit', cwd: root, env: childEnv });
  if (r.status !== 0) failed = true;
  let lines = [];
  try {
    lines = readFileSync(skipFile, 'utf8').split('\n').filter(Boolean);
  } catch {
    // no skips were written
  }
  skipped.push(...lines.map((l) => ({ group, ...JSON.parse(l) })));
}
rmSync(reportDir, { recursive: true, force: true });
const optIn = (s) => s.kind === 'skip' && s.reason.startsWith('opt-in:');
const blocking = skipped.filter((s) => !optIn(s));
console.log(`# skipped: ${skipped.length} (${skipped.length - blocking.length} opt-in)`);
for (const s of skipped) console.log(`#   ${s.kind} [${s.group}] ${s.name}${s.reason ? `: ${s.reason}` : ''}${s.file ? ` (${s.file.replace(root + '/', '')})` : ''}`);
if (ci && blocking.length > 0) {
  console.log(`# CI=true: ${blocking.length} test(s) skipped or marked todo without an opt-in reason; failing the run`);
  failed = true;
}
process.exit(failed ? 1 : 0);
