import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../core/ports.js';
import { ContainerRootfsImages, rootfsSource } from './container-rootfs.js';

const silent: Logger = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {}, child: () => silent };
const root = process.getuid?.() === 0;

test('containerd mounts: one overlay or one bind; odd paths and other types refused', () => {
  assert.deepEqual(rootfsSource([{ type: 'overlay', source: 'overlay', options: ['index=off', 'workdir=/s/3/work', 'upperdir=/s/3/fs', 'lowerdir=/s/2/fs:/s/1/fs'] }]), { kind: 'overlay', lowers: ['/s/2/fs', '/s/1/fs'], upper: '/s/3/fs' });
  assert.deepEqual(rootfsSource([{ type: 'bind', source: '/snap/4', options: ['rbind', 'rw'] }]), { kind: 'dir', dir: '/snap/4' });
  assert.throws(() => rootfsSource([]), /must be one mount/);
  assert.throws(() => rootfsSource([{ type: 'overlay', source: 'overlay', options: ['lowerdir=/a,upperdir=/etc'] }]), /is not a plain absolute path/);
  assert.throws(() => rootfsSource([{ type: 'overlay', source: 'overlay', options: ['lowerdir=../x'] }]), /is not a plain absolute path/);
  assert.throws(() => rootfsSource([{ type: 'nfs', source: 'x', options: [] }]), /not supported/);
});

test('layers become one ext4 image (whiteouts applied, links not followed), cached by the chain; each container gets its own layer', { skip: root ? false : 'needs root (mounts overlayfs)' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hc-ctr-rootfs-'));
  try {
    const lower1 = join(dir, 'l1');
    const lower2 = join(dir, 'l2');
    mkdirSync(join(lower1, 'etc'), { recursive: true });
    writeFileSync(join(lower1, 'etc/removed'), 'gone\n');
    writeFileSync(join(lower1, 'etc/kept'), 'kept\n');
    symlinkSync('/etc/shadow', join(lower1, 'etc/link'));
    mkdirSync(join(lower2, 'etc'), { recursive: true });
    execFileSync('mknod', [join(lower2, 'etc/removed'), 'c', '0', '0']); // an overlay whiteout
    const upper = join(dir, 'upper');
    mkdirSync(upper);
    const images = new ContainerRootfsImages({ dir: join(dir, 'cache'), maxBytes: 64 * 1024 * 1024, headroomBytes: 8 * 1024 * 1024, keep: 0, logger: silent });
    const mounts = [{ type: 'overlay', source: 'overlay', options: [`upperdir=${upper}`, `lowerdir=${lower2}:${lower1}`] }];
    const vm = join(dir, 'vm');
    mkdirSync(vm);
    const a = await images.prepare(mounts, vm, 'container-a');
    const b = await images.prepare(mounts, vm, 'container-b');
    assert.equal(a.imageKey, b.imageKey, 'the same chain shares one image');
    assert.equal(readdirSync(join(dir, 'cache')).filter((f) => f.endsWith('.ext4')).length, 1);
    assert.equal(a.disk.format, 'qcow2');
    const image = join(dir, 'cache', `chain-${a.imageKey}.ext4`);
    const ls = spawnSync('debugfs', ['-R', 'ls -l /etc', image], { encoding: 'utf8' }).stdout;
    assert.match(ls, /kept/);
    assert.doesNotMatch(ls, /removed/, 'the whiteout hid the lower file');
    assert.equal(spawnSync('debugfs', ['-R', 'stat /etc/link', image], { encoding: 'utf8' }).stdout.includes('Type: symlink'), true, 'a symlink stays a symlink');
    assert.ok(!readFileSync('/proc/mounts', 'utf8').includes(dir), 'no mount left');
    await images.release(a, new Set([b.imageKey]));
    assert.ok(!existsSync(a.disk.path));
    assert.ok(existsSync(image), 'still used by b');
    await images.release(b, new Set());
    assert.ok(!existsSync(image), 'unused and beyond keep: pruned');
    assert.ok(statSync(join(dir, 'cache')).isDirectory());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a rootfs larger than the limit is refused before any image is written', { skip: root ? false : 'needs root (mounts overlayfs)' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hc-ctr-rootfs-'));
  try {
    const lower = join(dir, 'l1');
    mkdirSync(lower);
    writeFileSync(join(lower, 'big'), Buffer.alloc(3 * 1024 * 1024));
    const images = new ContainerRootfsImages({ dir: join(dir, 'cache'), maxBytes: 1024 * 1024, headroomBytes: 0, keep: 0, logger: silent });
    await assert.rejects(images.prepare([{ type: 'overlay', source: 'overlay', options: [`lowerdir=${lower}`] }], dir, 'c'), (err: Error & { code?: string }) => err.code === 'HC_IMAGE_LIMIT_EXCEEDED' && /too large/.test(err.message));
    assert.deepEqual(readdirSync(join(dir, 'cache')), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
