// Runs the test suite with Node's built-in runner on the compiled output.
//   node scripts/run-tests.mjs            unit tests (dist/**/*.test.js) then e2e (dist/test/e2e)
//   node scripts/run-tests.mjs --unit     unit tests only
//   node scripts/run-tests.mjs --e2e      e2e tests only
//   extra arguments are passed to `node --test` (e.g. --test-name-pattern=...)
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const only = args.includes('--unit') ? 'unit' : args.includes('--e2e') ? 'e2e' : 'all';
const passThrough = args.filter((a) => a !== '--unit' && a !== '--e2e');

function find(dir, out = []) {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) find(path, out);
    else if (entry.endsWith('.test.js')) out.push(path);
  }
  return out;
}

const all = find(join(root, 'dist')).sort();
const isE2e = (f) => f.includes(`${join('dist', 'test', 'e2e')}`);
const files = all.filter((f) => (only === 'unit' ? !isE2e(f) : only === 'e2e' ? isE2e(f) : true));
if (files.length === 0) {
  console.error('no test files found under dist/; run `npm run build` first');
  process.exit(1);
}
// e2e files boot VMs and start daemons: run them one file at a time so 2 cores are not oversubscribed.
const unit = files.filter((f) => !isE2e(f));
const e2e = files.filter(isE2e);
let failed = false;
for (const [group, list, concurrency] of [['unit', unit, 2], ['e2e', e2e, 1]]) {
  if (list.length === 0) continue;
  console.log(`# ${group}: ${list.length} file(s)`);
  const r = spawnSync(process.execPath, ['--test', `--test-concurrency=${concurrency}`, ...passThrough, ...list], { stdio: 'inherit', cwd: root });
  if (r.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
