import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pidFileWritten, watchFor } from './file-wait.js';
import { pidInFile } from './read-now.js';

const never = new Promise<never>(() => undefined);

// The fallback is an hour: each wait below ends only through the watch or `end`, or the test times out.
const HOUR_MS = 3_600_000;

function withDir(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hc-file-wait-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test('pidFileWritten resolves with the pid once it is written: not while the file is empty, and without spinning', { timeout: 10_000 }, withDir(async (dir) => {
  const path = join(dir, 'main.pid');
  let looks = 0;
  const look = (): number | undefined => {
    looks++;
    return pidInFile(path);
  };
  const waiting = watchFor(dir, look, new Promise((r) => setTimeout(r, 200)), HOUR_MS);
  // An unrelated file and an empty pid file (crun creates it, then writes it).
  setTimeout(() => writeFileSync(join(dir, 'other'), 'x'), 20);
  setTimeout(() => writeFileSync(path, ''), 40);
  assert.equal(await waiting, undefined);
  assert.ok(looks <= 8, `looked ${looks} times: once per change, not in a loop`);

  const pid = pidFileWritten(path, never, HOUR_MS);
  setTimeout(() => writeFileSync(path, '4242\n'), 40);
  assert.equal(await pid, 4242);
}));

test('pidFileWritten sees a pid file renamed into place', { timeout: 10_000 }, withDir(async (dir) => {
  const path = join(dir, 'renamed.pid');
  const waiting = pidFileWritten(path, never, HOUR_MS);
  setTimeout(() => {
    writeFileSync(join(dir, 'tmp'), '7');
    renameSync(join(dir, 'tmp'), path);
  }, 20);
  assert.equal(await waiting, 7);
}));

test('watchFor: undefined once `end` settles (resolved or rejected) with nothing found; at once when already there', { timeout: 10_000 }, withDir(async (dir) => {
  const path = join(dir, 'never.pid');
  assert.equal(await pidFileWritten(path, new Promise((r) => setTimeout(r, 30)), HOUR_MS), undefined);
  assert.equal(await pidFileWritten(path, Promise.reject(new Error('exited')), HOUR_MS), undefined);
  // A pid written just as the process ends is still found by the last look.
  const late = pidFileWritten(path, new Promise((r) => setTimeout(() => (writeFileSync(path, '9'), r(undefined)), 30)), HOUR_MS);
  assert.equal(await late, 9);
  assert.equal(await pidFileWritten(path, never, HOUR_MS), 9);
}));

test('watchFor on a directory that cannot be watched: the fallback looks instead', { timeout: 10_000 }, withDir(async (dir) => {
  let looks = 0;
  const t0 = performance.now();
  const found = await watchFor(join(dir, 'missing-dir'), () => (++looks >= 3 ? 'seen' : undefined), never, 30);
  assert.equal(found, 'seen');
  assert.ok(performance.now() - t0 >= 25, 'it waited for the fallback, not looked in a loop');
}));
