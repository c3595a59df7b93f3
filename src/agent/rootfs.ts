/**
 * The workload's root filesystem in the guest: the image disk (found by its virtio serial) mounted
 * read-write at /run/hc/rootfs — it is the VM's own qcow2 copy-on-write layer over the shared
 * image, so writes stay private — or, with a scratch disk, the image read-only joined with the
 * scratch disk (formatted on first use) by overlayfs.
 */
import { existsSync } from 'node:fs';
import { mkdir, open, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Code, TtrpcError } from '../ttrpc/index.js';
import { errorText, type Log } from './log.js';

/** Runs a command; rejects with a message that includes its stderr when it fails. */
export type CommandRunner = (file: string, args: readonly string[]) => Promise<unknown>;

/** Where the guest's things are; tests point them at a temporary directory. */
export interface RootfsPaths {
  /** /sys/block */
  sysBlock: string;
  /** /dev */
  dev: string;
  /** /proc/mounts */
  mounts: string;
  /** /run/hc: rootfs, image, scratch and bundle live below it. */
  runDir: string;
  /** /proc/cmdline, for `hc.disks=` (absent: no such argument). */
  cmdline?: string;
}

export const GUEST_ROOTFS_PATHS: RootfsPaths = { sysBlock: '/sys/block', dev: '/dev', mounts: '/proc/mounts', runDir: '/run/hc', cmdline: '/proc/cmdline' };

export interface RootfsRequest {
  imageDiskSerial: string;
  scratchDiskSerial?: string;
}

/** How long to wait for a disk to show up (it normally is there at boot). */
const DISK_WAIT_MS = 5000;

/**
 * Disk names a VMM without virtio serials (Firecracker) puts on the kernel command line:
 * `hc.disks=image:vdb,scratch:vdc` → {vdb: 'image', vdc: 'scratch'}. Malformed pairs are ignored.
 */
export function parseDiskMap(cmdline: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const arg of cmdline.split(/\s+/)) {
    if (!arg.startsWith('hc.disks=')) continue;
    for (const pair of arg.slice('hc.disks='.length).split(',')) {
      const m = /^([A-Za-z0-9_.-]{1,32}):(vd[a-z]{1,2})$/.exec(pair);
      if (m) out[m[2]!] = m[1]!;
    }
  }
  return out;
}

/** The virtio-blk disks and their serials: {vda: 'image', ...}; `hc.disks=` names disks that have no serial. */
export async function diskSerials(sysBlock: string, cmdline?: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const named = cmdline ? parseDiskMap(await readFile(cmdline, 'utf8').catch(() => '')) : {};
  const names = await readdir(sysBlock).catch(() => [] as string[]);
  for (const name of names.filter((n) => /^vd[a-z]+$/.test(n)).sort()) {
    const serial = await readFile(join(sysBlock, name, 'serial'), 'utf8').catch(() => '');
    out[name] = named[name] ?? serial.trim();
  }
  return out;
}

/** /dev/vdX of the disk whose serial is `serial`, waiting a little for it to appear. */
export async function findDisk(paths: RootfsPaths, serial: string, waitMs = DISK_WAIT_MS): Promise<string> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const disks = await diskSerials(paths.sysBlock, paths.cmdline);
    const name = Object.keys(disks).find((n) => disks[n] === serial);
    if (name) return join(paths.dev, name);
    if (Date.now() >= deadline) {
      const seen = Object.entries(disks).map(([n, s]) => `${n}=${JSON.stringify(s)}`).join(', ') || 'none';
      throw new TtrpcError(Code.FAILED_PRECONDITION, `no virtio disk with serial "${serial}" (disks: ${seen})`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** True when the device starts with an ext2/3/4 superblock (magic 0xEF53 at byte 1080). */
export async function hasExtFilesystem(device: string): Promise<boolean> {
  const handle = await open(device, 'r');
  try {
    const buf = Buffer.alloc(2);
    const { bytesRead } = await handle.read(buf, 0, 2, 1080);
    return bytesRead === 2 && buf.readUInt16LE(0) === 0xef53;
  } finally {
    await handle.close();
  }
}

/** True when `path` is a mount point according to /proc/mounts. */
export async function isMounted(mounts: string, path: string): Promise<boolean> {
  const text = await readFile(mounts, 'utf8').catch(() => '');
  return text.split('\n').some((line) => line.split(' ')[1] === path);
}

/** The container rootfs path under `runDir`. */
export function rootfsPath(runDir: string): string {
  return join(runDir, 'rootfs');
}

/**
 * Mounts the workload's rootfs (once: an already mounted rootfs is reused, e.g. when the workload
 * is started again after it exited) and returns its path.
 */
export async function prepareRootfs(paths: RootfsPaths, req: RootfsRequest, run: CommandRunner, log: Log): Promise<string> {
  const rootfs = rootfsPath(paths.runDir);
  if (await isMounted(paths.mounts, rootfs)) return rootfs;
  if (!req.imageDiskSerial) throw new TtrpcError(Code.INVALID_ARGUMENT, 'image_disk_serial is required');
  const image = await findDisk(paths, req.imageDiskSerial);
  await mkdir(rootfs, { recursive: true });
  if (!req.scratchDiskSerial) {
    await mountOrFail(run, ['-t', 'ext4', '-o', 'rw', image, rootfs], 'the image disk');
    log(`rootfs: ${image} mounted read-write at ${rootfs}`);
    return rootfs;
  }
  const lower = join(paths.runDir, 'image');
  const scratch = join(paths.runDir, 'scratch');
  await mkdir(lower, { recursive: true });
  await mkdir(scratch, { recursive: true });
  await mountOrFail(run, ['-t', 'ext4', '-o', 'ro', image, lower], 'the image disk');
  const scratchDev = await findDisk(paths, req.scratchDiskSerial);
  let upperOn = await mountScratch(scratchDev, scratch, run, log);
  try {
    await mountOverlay(lower, scratch, rootfs, run);
  } catch (err) {
    if (upperOn === 'tmpfs') throw err;
    // The disk's filesystem may lack what overlayfs needs of an upper layer: a tmpfs over it does not.
    log(`rootfs: overlay on ${upperOn} failed (${errorText(err)}); using tmpfs for the writable layer`);
    await mountOrFail(run, ['-t', 'tmpfs', '-o', 'mode=755', 'tmpfs', scratch], 'a tmpfs for the writable layer');
    upperOn = 'tmpfs';
    await mountOverlay(lower, scratch, rootfs, run);
  }
  log(`rootfs: overlay of ${image} (read-only) and ${upperOn} at ${rootfs}`);
  return rootfs;
}

async function mountOverlay(lower: string, scratch: string, rootfs: string, run: CommandRunner): Promise<void> {
  await mkdir(join(scratch, 'upper'), { recursive: true });
  await mkdir(join(scratch, 'work'), { recursive: true });
  const options = `lowerdir=${lower},upperdir=${join(scratch, 'upper')},workdir=${join(scratch, 'work')}`;
  await mountOrFail(run, ['-t', 'overlay', '-o', options, 'overlay', rootfs], 'the overlay');
}

/**
 * Mounts the scratch disk at `dir`, formatting it first when it has no filesystem yet. When it
 * cannot be formatted or mounted, a tmpfs is used instead (writes then live in RAM). Returns what
 * the upper layer is on, for the log.
 */
async function mountScratch(device: string, dir: string, run: CommandRunner, log: Log): Promise<string> {
  try {
    if (!(await hasExtFilesystem(device))) {
      // Full e2fsprogs when the image has it; busybox's mke2fs (ext2, mounted by the ext4 driver) otherwise.
      if (existsSync('/sbin/mkfs.ext4') || existsSync('/usr/sbin/mkfs.ext4')) await run('mkfs.ext4', ['-q', '-F', '-L', 'hc-scratch', device]);
      else await run('mke2fs', ['-F', '-L', 'hc-scratch', device]);
      log(`rootfs: formatted scratch disk ${device}`);
    }
    await run('mount', ['-t', 'ext4', device, dir]);
    return device;
  } catch (err) {
    log(`rootfs: scratch disk ${device} unusable (${errorText(err)}); using tmpfs for the writable layer`);
    await mountOrFail(run, ['-t', 'tmpfs', '-o', 'mode=755', 'tmpfs', dir], 'a tmpfs for the writable layer');
    return 'tmpfs';
  }
}

async function mountOrFail(run: CommandRunner, args: string[], what: string): Promise<void> {
  try {
    await run('mount', args);
  } catch (err) {
    throw new TtrpcError(Code.INTERNAL, `cannot mount ${what}: ${errorText(err)}`);
  }
}
