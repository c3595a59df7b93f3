/**
 * The test runner (scripts/run-tests.mjs) counts skipped tests, and under CI=true a skip fails the
 * run unless its reason starts with "opt-in:". CI must never pass on a silent skip.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const runner = fileURLToPath(new URL('../../../scripts/run-tests.mjs', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'hc-runner-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function suite(name: string, body: string): string {
  const file = join(dir, `${name}.test.mjs`);
  writeFileSync(file, `import { test } from 'node:test';\n${body}\n`);
  return file;
}

function run(file: string, ci: boolean) {
  const env = { ...process.env, CI: ci ? 'true' : 'false' };
  return spawnSync(process.execPath, [runner, file], { encoding: 'utf8', env, timeout: 60_000 });
}

const missingPrereq = suite('missing', `test('needs a thing', { skip: 'qemu-img not found' }, () => {});\ntest('passes', () => {});`);
const optIn = suite('optin', `test('real firecracker', { skip: 'opt-in: set HYPERCORE_TEST_FIRECRACKER' }, () => {});`);
const clean = suite('clean', `test('passes', () => {});`);

test('a skipped test fails the run under CI=true, naming the test and its reason', () => {
  const r = run(missingPrereq, true);
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /# skipped: 1 \(0 opt-in\)/);
  assert.match(r.stdout, /skip \[unit\] needs a thing: qemu-img not found/);
});

test('outside CI a skip is reported but does not fail the run', () => {
  const r = run(missingPrereq, false);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /# skipped: 1/);
});

test('an opt-in skip is allowed under CI=true', () => {
  const r = run(optIn, true);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /# skipped: 1 \(1 opt-in\)/);
});

test('a run without skips reports zero', () => {
  const r = run(clean, true);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /# skipped: 0 \(0 opt-in\)/);
});
