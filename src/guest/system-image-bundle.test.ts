import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError } from '../core/errors.js';
import { runCommand } from '../system/command.js';
import { bundleAgent } from './system-image-bundle.js';

/** The repository root (this file runs as dist/src/guest/*.test.js). */
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

test('the agent bundles into one CommonJS file that node accepts without a package.json', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-bundle-'));
  try {
    const outfile = join(dir, 'agent', 'agent.js');
    const result = await bundleAgent({ entry: join(repoRoot, 'src/agent/main.ts'), outfile });
    const text = await readFile(outfile, 'utf8');
    assert.equal(result.sizeBytes, Buffer.byteLength(text));
    assert.match(result.sha256, /^[0-9a-f]{64}$/);
    assert.deepEqual(result.warnings, []);
    assert.match(text, /^"use strict";/);
    assert.match(text, /require\("node:child_process"\)/);
    assert.match(text, /"\[hypercore-agent\]"/);
    // node-pty (native addon) is loaded at run time from /agent/node_modules, never inlined.
    assert.doesNotMatch(text, /node_modules\/node-pty/);
    assert.doesNotMatch(text, /^import /m);
    assert.doesNotMatch(text, /sourceMappingURL/);
    await runCommand(process.execPath, ['--check', outfile], { timeoutMs: 20_000 });
    assert.deepEqual(await readdir(join(dir, 'agent')), ['agent.js'], 'no temp file left');
    // Deterministic: the bundle's hash is a system-image input.
    assert.equal((await bundleAgent({ entry: join(repoRoot, 'src/agent/main.ts'), outfile })).sha256, result.sha256);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('local TypeScript imports are inlined and the bundle runs as a plain script', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-bundle-'));
  try {
    await mkdir(join(dir, 'src'));
    await writeFile(join(dir, 'src', 'greet.ts'), 'export const greet = (name: string): string => `hello ${name}`;\n');
    await writeFile(join(dir, 'src', 'main.ts'), "import { greet } from './greet.js';\nimport { platform } from 'node:os';\nconsole.log(greet(platform()));\n");
    const outfile = join(dir, 'out', 'agent.js');
    await bundleAgent({ entry: join(dir, 'src', 'main.ts'), outfile });
    const { stdout } = await runCommand(process.execPath, [outfile], { timeoutMs: 20_000, cwd: join(dir, 'out') });
    assert.equal(stdout, 'hello linux\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a broken entry is an InvalidArgumentError naming the file and line', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-bundle-'));
  try {
    const entry = join(dir, 'main.ts');
    await writeFile(entry, "import { nothing } from './missing.js';\nconsole.log(nothing);\n");
    await assert.rejects(bundleAgent({ entry, outfile: join(dir, 'out.js') }), (err: unknown) => {
      assert.ok(err instanceof InvalidArgumentError);
      assert.match(err.message, /main\.ts:1:\d+: Could not resolve "\.\/missing\.js"/);
      return true;
    });
    assert.deepEqual(await readdir(dir), ['main.ts']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
