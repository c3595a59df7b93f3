/** Helpers of the keeper's unit tests. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A directory with a `back/` inside, removed by the returned cleanup's caller. */
export function keeperTempDir(cleanups: (() => void)[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'hc-keeper-'));
  mkdirSync(join(dir, 'back'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Waits (up to 5 s) for `check` to hold. */
export async function until(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}
