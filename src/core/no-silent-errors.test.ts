/**
 * The core never drops an error without a word: a `.catch(() => undefined)` or an empty catch
 * block there once left VMs in states nobody could explain. Each must log (with the VM) or rethrow,
 * or say on the same line where the error goes instead (`// not lost: ...`).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const coreDir = fileURLToPath(new URL('../../../src/core/', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? (e.name === 'testing' ? [] : sources(join(dir, e.name))) : e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [join(dir, e.name)] : []));
}

test('no core module swallows errors silently', () => {
  const silent = /\.catch\(\s*\(\)\s*=>\s*(undefined|\{\s*\}|null)\s*\)|catch\s*(\([^)]*\))?\s*\{\s*\}/;
  const found = sources(coreDir).flatMap((file) =>
    readFileSync(file, 'utf8')
      .split('\n')
      .flatMap((line, i) => (silent.test(line) && !line.includes('// not lost:') ? [`${file.slice(coreDir.length)}:${i + 1}: ${line.trim()}`] : [])),
  );
  assert.deepEqual(found, []);
});
