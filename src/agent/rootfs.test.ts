import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { diskSerials, findDisk, hasExtFilesystem, isMounted, parseDiskMap, prepareRootfs } from './rootfs.js';
import { fakeGuest, recordingRunner } from './test-helpers.js';

const silent = (): void => undefined;

test('disks are found by virtio serial; a missing serial names what exists', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-rootfs-'));
  try {
    const paths = await fakeGuest(dir, { vda: 'image\n', vdb: 'scratch' });
    assert.deepEqual(await diskSerials(paths.sysBlock), { vda: 'image', vdb: 'scratch' });
    assert.equal(await findDisk(paths, 'scratch'), join(paths.dev, 'vdb'));
    await assert.rejects(findDisk(paths, 'nope', 0), /no virtio disk with serial "nope" \(disks: vda="image", vdb="scratch"\)/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('ext superblock detection and /proc/mounts lookup', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-rootfs-'));
  try {
    const blank = join(dir, 'blank');
    await writeFile(blank, Buffer.alloc(4096));
    assert.equal(await hasExtFilesystem(blank), false);
    const ext = Buffer.alloc(4096);
    ext.writeUInt16LE(0xef53, 1080);
    await writeFile(join(dir, 'ext'), ext);
    assert.equal(await hasExtFilesystem(join(dir, 'ext')), true);
    await writeFile(join(dir, 'mounts'), '/dev/vda /run/hc/rootfs ext4 rw 0 0\n');
    assert.equal(await isMounted(join(dir, 'mounts'), '/run/hc/rootfs'), true);
    assert.equal(await isMounted(join(dir, 'mounts'), '/run/hc'), false);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('image only: the image disk is mounted read-write, once', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-rootfs-'));
  try {
    const paths = await fakeGuest(dir, { vda: 'root', vdb: 'image' });
    const { run, commands } = recordingRunner(paths);
    const rootfs = await prepareRootfs(paths, { imageDiskSerial: 'image' }, run, silent);
    assert.equal(rootfs, join(paths.runDir, 'rootfs'));
    assert.deepEqual(commands, [`mount -t ext4 -o rw ${paths.dev}/vdb ${rootfs}`]);
    await prepareRootfs(paths, { imageDiskSerial: 'image' }, run, silent);
    assert.equal(commands.length, 1, 'already mounted: reused');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('with a scratch disk: image read-only, blank scratch formatted, overlay joins them', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-rootfs-'));
  try {
    const paths = await fakeGuest(dir, { vda: 'image', vdb: 'scratch' });
    const { run, commands } = recordingRunner(paths);
    const rootfs = await prepareRootfs(paths, { imageDiskSerial: 'image', scratchDiskSerial: 'scratch' }, run, silent);
    const r = paths.runDir;
    assert.equal(commands[0], `mount -t ext4 -o ro ${paths.dev}/vda ${r}/image`);
    assert.match(commands[1]!, new RegExp(`^(mkfs\\.ext4 -q -F|mke2fs -F) -L hc-scratch ${paths.dev}/vdb$`));
    assert.equal(commands[2], `mount -t ext4 ${paths.dev}/vdb ${r}/scratch`);
    assert.equal(commands[3], `mount -t overlay -o lowerdir=${r}/image,upperdir=${r}/scratch/upper,workdir=${r}/scratch/work overlay ${rootfs}`);
    assert.equal(commands.length, 4);

    // Formatted already: no mkfs.
    const dir2 = join(dir, 'second');
    const paths2 = await fakeGuest(dir2, { vda: 'image', vdb: 'scratch' });
    const ext = Buffer.alloc(4096);
    ext.writeUInt16LE(0xef53, 1080);
    await writeFile(join(paths2.dev, 'vdb'), ext);
    const second = recordingRunner(paths2);
    await prepareRootfs(paths2, { imageDiskSerial: 'image', scratchDiskSerial: 'scratch' }, second.run, silent);
    assert.ok(!second.commands.some((c) => c.startsWith('mk')));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an unusable scratch disk falls back to tmpfs; a failing image mount fails with the reason', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-rootfs-'));
  try {
    const paths = await fakeGuest(dir, { vda: 'image', vdb: 'scratch' });
    const { run, commands } = recordingRunner(paths, (cmd) => cmd.includes('/vdb') && cmd.startsWith('mount'));
    const logs: string[] = [];
    await prepareRootfs(paths, { imageDiskSerial: 'image', scratchDiskSerial: 'scratch' }, run, (m) => logs.push(m));
    assert.ok(commands.includes(`mount -t tmpfs -o mode=755 tmpfs ${paths.runDir}/scratch`));
    assert.ok(logs.some((l) => /using tmpfs/.test(l)));

    // The overlay refusing the disk's filesystem as upper layer: tmpfs over it, and again.
    const paths3 = await fakeGuest(join(dir, 'c'), { vda: 'image', vdb: 'scratch' });
    let overlays = 0;
    const third = recordingRunner(paths3, (cmd) => cmd.includes('-t overlay') && overlays++ === 0);
    await prepareRootfs(paths3, { imageDiskSerial: 'image', scratchDiskSerial: 'scratch' }, third.run, silent);
    assert.deepEqual(third.commands.slice(-3).map((c) => c.split(' ').slice(0, 3).join(' ')), ['mount -t overlay', 'mount -t tmpfs', 'mount -t overlay']);

    const paths2 = await fakeGuest(join(dir, 'b'), { vda: 'image' });
    const failing = recordingRunner(paths2, () => true);
    await assert.rejects(prepareRootfs(paths2, { imageDiskSerial: 'image' }, failing.run, silent), /cannot mount the image disk: mount failed: boom/);
    await assert.rejects(prepareRootfs(paths2, { imageDiskSerial: '' }, failing.run, silent), /image_disk_serial is required/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('disks without serials (Firecracker) are named by hc.disks= on the kernel command line', async () => {
  assert.deepEqual(parseDiskMap('console=ttyS0 hc.disks=image:vdb,scratch:vdc hc.root=vda'), { vdb: 'image', vdc: 'scratch' });
  assert.deepEqual(parseDiskMap('hc.disks=../x:vdb,image:sda,:vdc,image:vdd'), { vdd: 'image' });
  const dir = await mkdtemp(join(tmpdir(), 'hc-rootfs-map-'));
  try {
    // Firecracker's serials are inode-derived digits, never the disk's name.
    const paths = { ...(await fakeGuest(dir, { vda: '', vdb: '2049001234', vdc: '2049001235' })), cmdline: join(dir, 'cmdline') };
    await writeFile(paths.cmdline, 'console=ttyS0 hc.disks=image:vdb,scratch:vdc\n');
    assert.equal(await findDisk(paths, 'scratch', 0), join(paths.dev, 'vdc'));
    assert.equal(await findDisk(paths, 'image', 0), join(paths.dev, 'vdb'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
