import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildExt4Image, measureTree } from './block-image.js';

const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'hc-block-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a hardlinked file is counted once: 11 MiB with 200 links makes a small filesystem', async () => {
  const tree = join(dir, 'links');
  mkdirSync(join(tree, 'many'), { recursive: true });
  writeFileSync(join(tree, 'data'), Buffer.alloc(11 * MiB, 0x5a));
  for (let i = 0; i < 200; i++) linkSync(join(tree, 'data'), join(tree, 'many', `link-${i}`));
  const usage = await measureTree(tree);
  assert.equal(usage.blockBytes, 11 * MiB + 4096, 'the data once, plus the one subdirectory');
  assert.equal(usage.entries, 2, 'one inode for the file (all its names), one for the directory');

  const output = join(dir, 'links.ext4');
  const built = await buildExt4Image({ sourceDir: tree, output, digest: `sha256:${'ab'.repeat(32)}` });
  assert.ok(built.sizeBytes < 40 * MiB, `the filesystem is ${built.sizeBytes} bytes`);
  assert.equal(statSync(output).size, built.sizeBytes);
  // Every name is still there and still one file.
  const stat = execFileSync('debugfs', ['-R', 'stat /many/link-199', output], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  assert.match(stat, /Links: 201/);
});

test('distinct files are each counted', async () => {
  const tree = join(dir, 'plain');
  mkdirSync(tree);
  writeFileSync(join(tree, 'a'), Buffer.alloc(5000));
  writeFileSync(join(tree, 'b'), Buffer.alloc(1));
  const usage = await measureTree(tree);
  assert.equal(usage.blockBytes, 3 * 4096);
  assert.equal(usage.entries, 2);
});
