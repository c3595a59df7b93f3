import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UnsafeLayerError } from './errors.js';
import { entryComponents, resolveInRoot } from './paths.js';
import { makeSandbox } from './test-helpers.js';

test('entryComponents cleans names, roots absolute ones and refuses climbing out', () => {
  assert.deepEqual(entryComponents('./usr/bin/'), ['usr', 'bin']);
  assert.deepEqual(entryComponents('/etc//passwd'), ['etc', 'passwd']);
  assert.deepEqual(entryComponents('a/./b/../c'), ['a', 'c']);
  assert.deepEqual(entryComponents('./'), []);
  for (const bad of ['..', '../x', 'a/../../x', '/../etc/passwd', './..']) {
    assert.throws(() => entryComponents(bad), (err: unknown) => err instanceof UnsafeLayerError && err.rule === 'path-escape' && err.entryPath === bad, bad);
  }
  assert.throws(() => entryComponents('a\0b'), (err: unknown) => err instanceof UnsafeLayerError && err.rule === 'invalid-name');
});

test('resolveInRoot follows symlinks inside the root and clamps every escape to the root', async () => {
  const box = await makeSandbox();
  try {
    const { root } = box;
    await mkdir(join(root, 'usr/lib'), { recursive: true });
    await writeFile(join(root, 'usr/lib/libc.so'), '');
    await symlink('usr/lib', join(root, 'lib')); // relative, like merged-usr
    await symlink('/usr/lib', join(root, 'abslib')); // absolute: rooted at root, not at the host /
    await symlink('../../../../../..', join(root, 'up')); // climbs: clamped at root
    await symlink('/', join(root, 'slash'));
    await symlink(box.sentinel, join(root, 'host')); // host path of the sentinel: means root/<that path>
    await symlink('lib/../../..', join(root, 'chain'));
    await symlink('loop2', join(root, 'loop1'));
    await symlink('loop1', join(root, 'loop2'));

    assert.equal(await resolveInRoot(root, 'lib/libc.so'), join(root, 'usr/lib/libc.so'));
    assert.equal(await resolveInRoot(root, 'abslib/libc.so'), join(root, 'usr/lib/libc.so'));
    assert.equal(await resolveInRoot(root, 'up/etc/passwd'), join(root, 'etc/passwd'));
    assert.equal(await resolveInRoot(root, 'slash/etc/passwd'), join(root, 'etc/passwd'));
    assert.equal(await resolveInRoot(root, '../../etc/passwd'), join(root, 'etc/passwd'));
    assert.equal(await resolveInRoot(root, 'host/secret'), join(root, box.sentinel, 'secret'));
    assert.equal(await resolveInRoot(root, 'chain/x'), join(root, 'x'));
    assert.equal(await resolveInRoot(root, ''), root);
    assert.equal(await resolveInRoot(root, '/'), root);
    // Missing components are appended; a `..` back into existing directories resolves symlinks again.
    assert.equal(await resolveInRoot(root, 'nope/a/b'), join(root, 'nope/a/b'));
    assert.equal(await resolveInRoot(root, 'nope/../lib/x'), join(root, 'usr/lib/x'));
    // The final component is followed too (callers that must not follow it resolve only the parent).
    assert.equal(await resolveInRoot(root, 'lib'), join(root, 'usr/lib'));
    await assert.rejects(resolveInRoot(root, 'loop1/x'), (err: unknown) => err instanceof UnsafeLayerError && err.rule === 'symlink-loop');
  } finally {
    await box.cleanup();
  }
});

test('resolveInRoot stops after 255 symlinks even without a cycle', async () => {
  const box = await makeSandbox();
  try {
    for (let i = 0; i < 300; i++) await symlink(`l${i + 1}`, join(box.root, `l${i}`));
    await assert.rejects(resolveInRoot(box.root, 'l0'), (err: unknown) => err instanceof UnsafeLayerError && err.rule === 'symlink-loop');
    assert.equal(await resolveInRoot(box.root, 'l100'), join(box.root, 'l300'));
  } finally {
    await box.cleanup();
  }
});
