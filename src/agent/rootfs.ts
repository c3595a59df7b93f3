/**
 * The workload's root filesystem in the guest: the image disk (found by its virtio serial) mounted
 * read-write at /run/hc/rootfs — it is the VM's own qcow2 copy-on-write layer over the shared
 * image, so writes stay private — or, with a scratch disk, the image read-only joined with the
 * scratch disk (formatted on first use) by overlayfs.
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { Code, TtrpcError } from '../ttrpc/index.js';
import { errorText, type Log } from './log.js';
import { commandMounts, type MountRunner, type RootfsStep } from './mount-steps.js';
import { readNow } from './read-now.js';

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
  // Synchronous: sysfs and /proc answer at once (see read-now.ts); this is on the boot path.
  const named = cmdline ? parseDiskMap(readNow(cmdline) ?? '') : {};
  let names: string[] = [];
  try {
    names = readdirSync(sysBlock);
  } catch {
    // no block devices (yet)
  }
  for (const name of names.filter((n) => /^vd[a-z]+$/.test(n)).sort()) {
    out[name] = named[name] ?? (readNow(join(sysBlock, name, 'serial')) ?? '').trim();
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
  const text = readNow(mounts) ?? '';
  return text.split('\n').some((line) => line.split(' ')[1] === path);
}

/** The container rootfs path under `runDir`. */
export function rootfsPath(runDir: string): string {
  return join(runDir, 'rootfs');
}

/** A step of the rootfs and what it mounts, for the error that names it. */
interface Planned {
  step: RootfsStep;
  what: string;
}

const mountOf = (fstype: string, source: string, target: string, what: string, options?: string): Planned => ({ step: { kind: 'mount', fstype, source, target, ...(options ? { options } : {}) }, what });

/** Runs `plan`; a failure throws an error naming what could not be mounted. */
async function mountOrFail(mounts: MountRunner, plan: readonly Planned[]): Promise<void> {
  const failed = await mounts(plan.map((p) => p.step));
  if (failed) throw new TtrpcError(Code.INTERNAL, `cannot mount ${plan[failed.index]!.what}: ${failed.reason}`);
}

/**
 * Mounts the workload's rootfs (once: an already mounted rootfs is reused, e.g. when the workload
 * is started again after it exited) and returns its path. `mounts` runs the mounts (default: one
 * mount(8) each through `run`, which also formats a blank scratch disk).
 */
export async function prepareRootfs(paths: RootfsPaths, req: RootfsRequest, run: CommandRunner, log: Log, mounts: MountRunner = commandMounts(run)): Promise<string> {
  const rootfs = rootfsPath(paths.runDir);
  if (await isMounted(paths.mounts, rootfs)) return rootfs;
  if (!req.imageDiskSerial) throw new TtrpcError(Code.INVALID_ARGUMENT, 'image_disk_serial is required');
  const image = await findDisk(paths, req.imageDiskSerial);
  mkdirSync(rootfs, { recursive: true });
  if (!req.scratchDiskSerial) {
    await mountOrFail(mounts, [mountOf('ext4', image, rootfs, 'the image disk', 'rw')]);
    log(`rootfs: ${image} mounted read-write at ${rootfs}`);
    return rootfs;
  }
  const lower = join(paths.runDir, 'image');
  const scratch = join(paths.runDir, 'scratch');
  mkdirSync(lower, { recursive: true });
  mkdirSync(scratch, { recursive: true });
  const imageMount = mountOf('ext4', image, lower, 'the image disk', 'ro');
  const scratchDev = await findDisk(paths, req.scratchDiskSerial);
  let unusable: string | undefined;
  const formatted = await hasExtFilesystem(scratchDev).catch((err: unknown) => {
    unusable = errorText(err);
    return false;
  });
  // The common case, a formatted scratch disk: every mount in one go. A blank one is formatted
  // after the image is mounted, so a broken image disk fails before the scratch disk is written.
  if (!formatted) {
    await mountOrFail(mounts, [imageMount]);
    if (unusable === undefined) unusable = await formatScratch(scratchDev, run, log);
  }
  const tmpfs = mountOf('tmpfs', 'tmpfs', scratch, 'a tmpfs for the writable layer', 'mode=755');
  const scratchMount = mountOf('ext4', scratchDev, scratch, `the scratch disk ${scratchDev}`);
  const overlay: Planned[] = [
    { step: { kind: 'mkdir', path: join(scratch, 'upper') }, what: 'the overlay' },
    { step: { kind: 'mkdir', path: join(scratch, 'work') }, what: 'the overlay' },
    mountOf('overlay', 'overlay', rootfs, 'the overlay', `lowerdir=${lower},upperdir=${join(scratch, 'upper')},workdir=${join(scratch, 'work')}`),
  ];
  let upperOn = unusable === undefined ? scratchDev : 'tmpfs';
  if (unusable !== undefined) log(`rootfs: scratch disk ${scratchDev} unusable (${unusable}); using tmpfs for the writable layer`);
  let plan = [...(formatted ? [imageMount] : []), upperOn === 'tmpfs' ? tmpfs : scratchMount, ...overlay];
  for (;;) {
    const failed = await mounts(plan.map((p) => p.step));
    if (!failed) break;
    const culprit = plan[failed.index]!;
    if (culprit === imageMount || upperOn === 'tmpfs') throw new TtrpcError(Code.INTERNAL, `cannot mount ${culprit.what}: ${failed.reason}`);
    // The disk's filesystem may be broken, or lack what overlayfs needs of an upper layer: a tmpfs
    // (over it, when it is mounted) does not.
    if (culprit === scratchMount) log(`rootfs: scratch disk ${scratchDev} unusable (${failed.reason}); using tmpfs for the writable layer`);
    else log(`rootfs: overlay on ${upperOn} failed (${failed.reason}); using tmpfs for the writable layer`);
    upperOn = 'tmpfs';
    plan = [tmpfs, ...overlay];
  }
  log(`rootfs: overlay of ${image} (read-only) and ${upperOn} at ${rootfs}`);
  return rootfs;
}

/**
 * Formats a blank scratch disk: full e2fsprogs when the image has it; busybox's mke2fs (ext2,
 * mounted by the ext4 driver) otherwise. Returns why it failed, undefined when it worked.
 */
async function formatScratch(device: string, run: CommandRunner, log: Log): Promise<string | undefined> {
  try {
    if (existsSync('/sbin/mkfs.ext4') || existsSync('/usr/sbin/mkfs.ext4')) await run('mkfs.ext4', ['-q', '-F', '-L', 'hc-scratch', device]);
    else await run('mke2fs', ['-F', '-L', 'hc-scratch', device]);
    log(`rootfs: formatted scratch disk ${device}`);
    return undefined;
  } catch (err) {
    return errorText(err);
  }
}
