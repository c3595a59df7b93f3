import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProviderUnavailableError } from '../core/errors.js';
import { planModules, readModuleDepends, scanModuleTree, STAGE1_MODULES, type ModuleTree } from './kernel-modules.js';
import { CLOUD_KERNEL_MODULES, fakeKo, makeFakeModuleTree } from './test-helpers.js';

function tree(mods: Record<string, string[]>, builtin: string[] = [], compressed: string[] = []): ModuleTree {
  return {
    modules: new Map(Object.entries(mods).map(([name, depends]) => [name.replace(/-/g, '_'), { name, path: `/m/${name}.ko`, depends }])),
    builtin: new Set(builtin),
    compressed: new Set(compressed),
  };
}

test('readModuleDepends reads the modinfo depends= list, empty when there is none', () => {
  assert.deepEqual(readModuleDepends(fakeKo('virtio_pci', ['virtio_ring', 'virtio'])), ['virtio_ring', 'virtio']);
  assert.deepEqual(readModuleDepends(fakeKo('virtio_ring', [])), []);
  assert.deepEqual(readModuleDepends(Buffer.from('no modinfo here')), []);
  // "depends=" inside another string (not after a NUL) is not the modinfo key.
  assert.deepEqual(readModuleDepends(Buffer.from('\0description=xdepends=bogus\0depends=a,b\0')), ['a', 'b']);
});

test('the cloud kernel modules are loaded in the documented working order', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-mods-'));
  try {
    const plan = planModules(await scanModuleTree(await makeFakeModuleTree(dir, CLOUD_KERNEL_MODULES)), STAGE1_MODULES);
    assert.deepEqual(plan.load.map((m) => m.name), [...STAGE1_MODULES]);
    assert.deepEqual(plan.missing, []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('dependencies are moved before their users and pulled in when not asked for', () => {
  const t = tree({ virtio_ring: [], virtio: ['virtio_ring'], virtio_blk: ['virtio', 'virtio_ring'], 'virtio-rng': ['virtio'] });
  const plan = planModules(t, ['virtio_blk', 'virtio-rng']);
  assert.deepEqual(plan.load.map((m) => m.name), ['virtio_ring', 'virtio', 'virtio_blk', 'virtio-rng']);
});

test('- and _ are the same in module names; missing and built-in modules are reported, not loaded', () => {
  const t = tree({ virtio_ring: [], 'virtio-rng': ['virtio_ring'] }, ['overlay']);
  const plan = planModules(t, ['virtio_rng', 'overlay', 'vsock']);
  assert.deepEqual(plan.load.map((m) => m.name), ['virtio_ring', 'virtio-rng']);
  assert.deepEqual(plan.builtin, ['overlay']);
  assert.deepEqual(plan.missing, ['vsock']);
});

test('a missing required module is an error that says so; compressed-only modules get a hint', () => {
  assert.throws(() => planModules(tree({ virtio_ring: [] }), ['virtio_ring', 'virtio_blk'], ['virtio_blk']), (err: unknown) => {
    assert.ok(err instanceof ProviderUnavailableError);
    assert.match(err.message, /lacks required module\(s\) virtio_blk$/);
    return true;
  });
  assert.throws(() => planModules(tree({}, [], ['virtio_blk']), ['virtio_blk'], ['virtio_blk']), /only compressed/);
  // Built in counts as present.
  assert.doesNotThrow(() => planModules(tree({}, ['virtio_blk']), ['virtio_blk'], ['virtio_blk']));
});

test('a dependency cycle is reported instead of recursing forever', () => {
  assert.throws(() => planModules(tree({ a: ['b'], b: ['a'] }), ['a']), /cycle: a -> b -> a/);
});

test('scanModuleTree finds .ko files, modules.builtin and compressed modules', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-mods-'));
  try {
    const modulesDir = await makeFakeModuleTree(dir, { virtio_ring: { dir: 'drivers/virtio', depends: [] } }, { builtin: ['ext4'], compressed: ['zram'] });
    const t = await scanModuleTree(modulesDir);
    assert.deepEqual([...t.modules.keys()], ['virtio_ring']);
    assert.ok(t.builtin.has('ext4'));
    assert.ok(t.compressed.has('zram'));
    await assert.rejects(scanModuleTree(join(dir, 'nope')), ProviderUnavailableError);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a module whose dependency is missing is reported missing too, not loaded', () => {
  const plan = planModules(tree({ virtio_ring: [], vmw_vsock_virtio_transport_common: ['vsock'] }), ['vmw_vsock_virtio_transport_common', 'virtio_ring']);
  assert.deepEqual(plan.load.map((m) => m.name), ['virtio_ring']);
  assert.deepEqual(plan.missing, ['vsock', 'vmw_vsock_virtio_transport_common']);
});
