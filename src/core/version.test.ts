import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { HYPERCORE_VERSION } from './version.js';

test("the version the CLI and the daemon report is package.json's", () => {
  // This file runs as dist/src/core/version.test.js.
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  assert.equal(HYPERCORE_VERSION, pkg.version);
});
