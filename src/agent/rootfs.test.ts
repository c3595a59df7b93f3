import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MountRunner, RootfsStep } from './mount-steps.js';
import { diskSerials, findDisk, hasExtFilesystem, isMounted, parseDiskMap, prepareRootfs, type RootfsPaths } from './rootfs.js';
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

/** A MountRunner that records each batch of steps and fails the first step `fail` picks. */
function recordingMounts(fail: (step: RootfsStep) => boolean = () => false): { mounts: MountRunner; batches: string[][] } {
  const batches: string[][] = [];
  const mounts: MountRunner = async (steps) => {
    batches.push(steps.map((s) => (s.kind === 'mkdir' ? `mkdir ${s.path}` : `${s.fstype} ${s.source} ${s.target}${s.options ? ` ${s.options}` : ''}`)));
    const index = steps.findIndex(fail);
    return index >= 0 ? { index, reason: 'Invalid argument' } : undefined;
  };
  return { mounts, batches };
}

async function formattedScratchGuest(dir: string): Promise<RootfsPaths> {
  const paths = await fakeGuest(dir, { vda: 'image', vdb: 'scratch' });
  const ext = Buffer.alloc(4096);
  ext.writeUInt16LE(0xef53, 1080);
  await writeFile(join(paths.dev, 'vdb'), ext);
  return paths;
}

test('a formatted scratch disk: every mount in one batch, no command run', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-rootfs-'));
  try {
    const paths = await formattedScratchGuest(dir);
    const { run, commands } = recordingRunner(paths);
    const { mounts, batches } = recordingMounts();
    const rootfs = await prepareRootfs(paths, { imageDiskSerial: 'image', scratchDiskSerial: 'scratch' }, run, silent, mounts);
    const r = paths.runDir;
    assert.deepEqual(batches, [[`ext4 ${paths.dev}/vda ${r}/image ro`, `ext4 ${paths.dev}/vdb ${r}/scratch`, `mkdir ${r}/scratch/upper`, `mkdir ${r}/scratch/work`, `overlay overlay ${rootfs} lowerdir=${r}/image,upperdir=${r}/scratch/upper,workdir=${r}/scratch/work`]]);
    assert.deepEqual(commands, []);

    // A blank one: the image first, then mkfs, then the rest.
    const blank = await fakeGuest(join(dir, 'blank'), { vda: 'image', vdb: 'scratch' });
    const second = recordingRunner(blank);
    const secondMounts = recordingMounts();
    await prepareRootfs(blank, { imageDiskSerial: 'image', scratchDiskSerial: 'scratch' }, second.run, silent, secondMounts.mounts);
    assert.deepEqual(secondMounts.batches.map((b) => b.length), [1, 4]);
    assert.match(second.commands[0]!, /^(mkfs\.ext4 -q -F|mke2fs -F) -L hc-scratch /);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('batched mounts: a failing scratch disk or overlay falls back to tmpfs; the image disk and the tmpfs fail naming themselves', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-rootfs-'));
  try {
    const request = { imageDiskSerial: 'image', scratchDiskSerial: 'scratch' };
    const paths = await formattedScratchGuest(join(dir, 'a'));
    const r = paths.runDir;
    const tmpfsBatch = [`tmpfs tmpfs ${r}/scratch mode=755`, `mkdir ${r}/scratch/upper`, `mkdir ${r}/scratch/work`, `overlay overlay ${r}/rootfs lowerdir=${r}/image,upperdir=${r}/scratch/upper,workdir=${r}/scratch/work`];

    const logs: string[] = [];
    const scratchFails = recordingMounts((s) => s.kind === 'mount' && s.source.endsWith('/vdb'));
    await prepareRootfs(paths, request, recordingRunner(paths).run, (m) => logs.push(m), scratchFails.mounts);
    assert.deepEqual(scratchFails.batches[1], tmpfsBatch);
    assert.ok(logs.some((l) => l === `rootfs: scratch disk ${paths.dev}/vdb unusable (Invalid argument); using tmpfs for the writable layer`), logs.join('\n'));
    assert.ok(logs.some((l) => l.endsWith(`and tmpfs at ${r}/rootfs`)));

    const overlayLogs: string[] = [];
    let overlays = 0;
    const overlayFailsOnce = recordingMounts((s) => s.kind === 'mount' && s.fstype === 'overlay' && overlays++ === 0);
    await prepareRootfs(paths, request, recordingRunner(paths).run, (m) => overlayLogs.push(m), overlayFailsOnce.mounts);
    assert.equal(overlayFailsOnce.batches.length, 2);
    assert.deepEqual(overlayFailsOnce.batches[1], tmpfsBatch);
    assert.ok(overlayLogs.some((l) => l.startsWith(`rootfs: overlay on ${paths.dev}/vdb failed (Invalid argument)`)));

    const imageFails = recordingMounts((s) => s.kind === 'mount' && s.source.endsWith('/vda'));
    await assert.rejects(prepareRootfs(paths, request, recordingRunner(paths).run, silent, imageFails.mounts), /cannot mount the image disk: Invalid argument/);
    assert.equal(imageFails.batches.length, 1, 'no fallback for the image disk');

    const tmpfsFails = recordingMounts((s) => s.kind === 'mount' && (s.fstype === 'tmpfs' || s.source.endsWith('/vdb')));
    await assert.rejects(prepareRootfs(paths, request, recordingRunner(paths).run, silent, tmpfsFails.mounts), /cannot mount a tmpfs for the writable layer: Invalid argument/);

    const overlayAlwaysFails = recordingMounts((s) => s.kind === 'mount' && s.fstype === 'overlay');
    await assert.rejects(prepareRootfs(paths, request, recordingRunner(paths).run, silent, overlayAlwaysFails.mounts), /cannot mount the overlay: Invalid argument/);
    assert.equal(overlayAlwaysFails.batches.length, 2);

    const imageOnly = await fakeGuest(join(dir, 'b'), { vda: 'image' });
    const rwFails = recordingMounts(() => true);
    await assert.rejects(prepareRootfs(imageOnly, { imageDiskSerial: 'image' }, recordingRunner(imageOnly).run, silent, rwFails.mounts), /cannot mount the image disk: Invalid argument/);
    assert.deepEqual(rwFails.batches, [[`ext4 ${imageOnly.dev}/vda ${imageOnly.runDir}/rootfs rw`]]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
