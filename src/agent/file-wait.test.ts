import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileAppears } from './file-wait.js';

const never = new Promise<never>(() => undefined);

// The fallback is an hour: each wait below ends only through the watch or `end`, or the test times out.
const HOUR_MS = 3_600_000;

test('fileAppears resolves when the file is made in its directory (watched, not polled)', { timeout: 10_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hc-file-wait-'));
  try {
    const path = join(dir, 'main.pid');
    const waiting = fileAppears(path, never, HOUR_MS);
    setTimeout(() => writeFileSync(join(dir, 'other'), 'x'), 20);
    setTimeout(() => writeFileSync(path, '42'), 60);
    await waiting;
    assert.ok(existsSync(path));
    // Renamed into place, as pid files often are.
    const renamed = join(dir, 'renamed.pid');
    const waitingRename = fileAppears(renamed, never, HOUR_MS);
    setTimeout(() => {
      writeFileSync(join(dir, 'tmp'), '7');
      renameSync(join(dir, 'tmp'), renamed);
    }, 20);
    await waitingRename;
    assert.ok(existsSync(renamed));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('fileAppears resolves when `end` settles first, or at once when the file exists', { timeout: 10_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hc-file-wait-'));
  try {
    await fileAppears(join(dir, 'never'), new Promise((r) => setTimeout(r, 30)), HOUR_MS);
    assert.equal(existsSync(join(dir, 'never')), false);
    await fileAppears(join(dir, 'never'), Promise.reject(new Error('exited')), HOUR_MS);
    writeFileSync(join(dir, 'there'), '');
    await fileAppears(join(dir, 'there'), never, HOUR_MS);
    // A directory that cannot be watched: the fallback paces the caller.
    const t0 = performance.now();
    await fileAppears(join(dir, 'missing-dir', 'f'), never, 30);
    assert.ok(performance.now() - t0 >= 25, 'it waited for the fallback, not returned at once');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
