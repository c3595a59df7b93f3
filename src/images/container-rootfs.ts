/**
 * Root disks of pod containers, from the rootfs mounts containerd hands over.
 *
 * containerd's overlayfs snapshotter gives a container `lowerdir=` (its image's layers, committed
 * snapshots that never change) plus an empty `upperdir=` (its own writable layer). The layers are
 * mounted read-only on the host as one overlay (so whiteouts and opaque directories are applied by
 * the kernel, exactly), copied into an ext4 image with `mkfs.ext4 -d`, and that image is cached by
 * the chain of lower directories: the second container of the same image, in any pod, reuses it.
 * Each container then gets a qcow2 layer over the shared image in its VM's state directory, which
 * the guest mounts read-write; the image has some free room for those writes (`headroomBytes`), and
 * the qcow2 file can never grow past the image's size.
 *
 * Why this way: the VM cannot see the host's directories (no shared filesystem in these guests),
 * and a block device is what the guest already knows; building the image costs about the time of
 * copying the layers once per image (measured in bench/containerd.ts), and swapping it into a
 * running VM takes milliseconds (see providers/qemu/disk-slots.ts). Writes go to the guest's layer,
 * not to containerd's upperdir (which stays empty), so `ctr snapshot` does not see them.
 *
 * The mounts come from containerd (root, trusted); the files in the layers come from images
 * (hostile): they are never followed on the host, only copied, and their total size is bounded.
 */
import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, rename, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCodes, HypercoreError, asHypercoreError } from '../core/errors.js';
import type { ContainerDisk, HostMount, RootfsImages } from '../core/pod.js';
import type { Logger } from '../core/ports.js';
import { runCommand } from '../system/command.js';
import { imageSizeBytes, measureTree } from './block-image.js';
import { createQcow2Overlay } from './vm-disks.js';

const MIB = 1024 * 1024;
/** Inodes for files the container creates, beyond those of the image. */
const EXTRA_INODES = 16_384;
/** Most entries a rootfs may have (an image of millions of tiny files would exhaust the host's time). */
const MAX_ENTRIES = 4_000_000;

export interface ContainerRootfsOptions {
  /** Cache directory of the images (`<root>/pod-rootfs`). */
  dir: string;
  /** Largest rootfs content accepted, in bytes. */
  maxBytes: number;
  /** Free room in each image for the container's writes. */
  headroomBytes: number;
  /** Unused cached images kept (most recently used first). */
  keep: number;
  logger: Logger;
}

/** What a container's rootfs is made of, checked. */
type Source = { kind: 'overlay'; lowers: string[]; upper?: string } | { kind: 'dir'; dir: string };

/** A path containerd named: absolute, plain, and (as mount options go) free of separators. */
function checkPath(what: string, path: string): string {
  if (!path.startsWith('/') || /[,:\\\n\0]/.test(path) || path.split('/').includes('..')) {
    throw new HypercoreError(ErrorCodes.invalidArgument, `rootfs mount: ${what} "${path}" is not a plain absolute path`);
  }
  return path;
}

/** Reads containerd's rootfs mounts: one overlay (overlayfs snapshotter) or one bind of a directory (native). */
export function rootfsSource(mounts: readonly HostMount[]): Source {
  if (mounts.length !== 1) throw new HypercoreError(ErrorCodes.invalidArgument, `the container's rootfs must be one mount (overlay or bind), got ${mounts.length}`);
  const m = mounts[0]!;
  if (m.type === 'overlay') {
    const option = (name: string) => m.options.find((o) => o.startsWith(`${name}=`))?.slice(name.length + 1);
    const lowerdir = option('lowerdir');
    if (!lowerdir) throw new HypercoreError(ErrorCodes.invalidArgument, 'rootfs overlay mount has no lowerdir');
    const lowers = lowerdir.split(':').map((p) => checkPath('lowerdir', p));
    const upper = option('upperdir');
    return { kind: 'overlay', lowers, ...(upper ? { upper: checkPath('upperdir', upper) } : {}) };
  }
  if (m.type === 'bind' || m.type === 'rbind' || m.options.includes('bind') || m.options.includes('rbind')) {
    return { kind: 'dir', dir: checkPath('bind source', m.source) };
  }
  throw new HypercoreError(ErrorCodes.invalidArgument, `rootfs mount type "${m.type}" is not supported (overlay and bind are; use the overlayfs or native snapshotter)`);
}

async function requireDirectory(path: string): Promise<{ dev: number; ino: number; ctimeMs: number }> {
  const st = await lstat(path).catch(() => undefined);
  if (!st?.isDirectory()) throw new HypercoreError(ErrorCodes.invalidArgument, `rootfs mount: ${path} is not a directory`);
  return { dev: st.dev, ino: st.ino, ctimeMs: st.ctimeMs };
}

async function isEmptyDir(path: string): Promise<boolean> {
  return (await readdir(path)).length === 0;
}

export class ContainerRootfsImages implements RootfsImages {
  private readonly building = new Map<string, Promise<string>>();

  constructor(private readonly options: ContainerRootfsOptions) {}

  async prepare(mounts: readonly HostMount[], dir: string, name: string): Promise<ContainerDisk> {
    const source = rootfsSource(mounts);
    const key = await this.cacheKey(source);
    const image = key ? await this.cached(key, source) : await this.build(source, join(this.options.dir, `private-${randomBytes(8).toString('hex')}.ext4`));
    const overlay = join(dir, `${name}.qcow2`);
    try {
      await rm(overlay, { force: true });
      await createQcow2Overlay(image, overlay, (await stat(image)).size);
    } catch (err) {
      if (!key) await rm(image, { force: true });
      throw err;
    }
    return { disk: { name, path: overlay, format: 'qcow2', readOnly: false }, imageKey: key ?? image };
  }

  async release(disk: ContainerDisk, inUse: ReadonlySet<string>): Promise<void> {
    await rm(disk.disk.path, { force: true });
    // A private image (a container whose own layer had files) belongs to that container alone.
    if (disk.imageKey.startsWith('/')) await rm(disk.imageKey, { force: true });
    await this.prune(inUse);
  }

  /** Unused cached images beyond the `keep` most recently used are removed. */
  private async prune(inUse: ReadonlySet<string>): Promise<void> {
    const entries = await readdir(this.options.dir).catch(() => [] as string[]);
    const cached: { key: string; path: string; mtimeMs: number }[] = [];
    for (const entry of entries) {
      const m = /^chain-([0-9a-f]{64})\.ext4$/.exec(entry);
      if (!m || inUse.has(m[1]!) || this.building.has(m[1]!)) continue;
      const path = join(this.options.dir, entry);
      const st = await stat(path).catch(() => undefined);
      if (st) cached.push({ key: m[1]!, path, mtimeMs: st.mtimeMs });
    }
    cached.sort((a, b) => b.mtimeMs - a.mtimeMs);
    for (const old of cached.slice(this.options.keep)) await rm(old.path, { force: true });
  }

  /** Only an overlay whose own layer is empty is the image alone, and so shareable. */
  private async cacheKey(source: Source): Promise<string | undefined> {
    if (source.kind !== 'overlay') return undefined;
    if (source.upper && !(await isEmptyDir(source.upper))) return undefined;
    // Snapshot directories are never reused, but a key that also names each directory's inode and
    // change time cannot confuse a directory with a later one at the same path.
    const ids = [];
    for (const lower of source.lowers) ids.push({ path: lower, ...(await requireDirectory(lower)) });
    return createHash('sha256').update(JSON.stringify(ids)).digest('hex');
  }

  private async cached(key: string, source: Source): Promise<string> {
    const path = join(this.options.dir, `chain-${key}.ext4`);
    const exists = await stat(path).then(() => true, () => false);
    if (exists) {
      const now = new Date();
      await utimes(path, now, now);
      return path;
    }
    let pending = this.building.get(key);
    if (!pending) {
      pending = this.build(source, path).finally(() => this.building.delete(key));
      this.building.set(key, pending);
    }
    return pending;
  }

  /** Mounts the rootfs read-only, copies it into an ext4 image at `output`. */
  private async build(source: Source, output: string): Promise<string> {
    await mkdir(this.options.dir, { recursive: true, mode: 0o700 });
    const work = join(this.options.dir, `tmp-${randomBytes(8).toString('hex')}`);
    const mnt = join(work, 'mnt');
    const started = Date.now();
    await mkdir(mnt, { recursive: true });
    let mounted = false;
    try {
      let tree: string;
      if (source.kind === 'overlay') {
        for (const lower of source.lowers) await requireDirectory(lower);
        const lowers = source.upper && !(await isEmptyDir(source.upper)) ? [source.upper, ...source.lowers] : [...source.lowers];
        // overlayfs wants two lower layers when it has no upper one: an empty one does.
        if (lowers.length === 1) {
          await mkdir(join(work, 'empty'));
          lowers.push(join(work, 'empty'));
        }
        await runCommand('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${lowers.join(':')}`, mnt], { timeoutMs: 30_000 });
        mounted = true;
        tree = mnt;
      } else {
        await requireDirectory(source.dir);
        tree = source.dir;
      }
      const usage = await measureTree(tree);
      if (usage.entries > MAX_ENTRIES || usage.blockBytes > this.options.maxBytes) {
        throw new HypercoreError(ErrorCodes.imageLimitExceeded, `the container's rootfs is too large (${usage.entries} entries, ${Math.round(usage.blockBytes / MIB)} MiB; at most ${MAX_ENTRIES} and ${Math.round(this.options.maxBytes / MIB)} MiB)`);
      }
      const inodes = usage.entries + EXTRA_INODES;
      const sizeBytes = Math.ceil((imageSizeBytes(usage, inodes) + this.options.headroomBytes) / MIB) * MIB;
      const partial = `${output}.partial`;
      // A sparse file reads as zeros: mkfs need not write its inode tables, so the headroom is free.
      await runCommand('mkfs.ext4', ['-q', '-F', '-t', 'ext4', '-b', '4096', '-I', '256', '-N', String(inodes), '-m', '0', '-E', 'root_owner=0:0,nodiscard,assume_storage_prezeroed=1', '-L', 'hc-rootfs', '-d', tree, partial, `${sizeBytes / 1024}k`], { timeoutMs: 10 * 60_000 });
      await rename(partial, output);
      this.options.logger.info({ image: output, entries: usage.entries, contentMiB: Math.round(usage.blockBytes / MIB), sizeMiB: sizeBytes / MIB, ms: Date.now() - started }, 'container rootfs image built');
      return output;
    } catch (err) {
      await rm(`${output}.partial`, { force: true });
      throw err instanceof HypercoreError ? err : new HypercoreError(ErrorCodes.commandFailed, `building the container's root disk failed: ${asHypercoreError(err).message}`, { cause: err });
    } finally {
      const unmounted = !mounted || (await runCommand('umount', [mnt], { timeoutMs: 30_000 }).then(() => true, (err: unknown) => (this.options.logger.warn({ mnt, err: asHypercoreError(err).message }, 'unmounting a rootfs build mount failed'), false)));
      // Never remove a directory something is still mounted on: that would reach into the layers.
      if (unmounted) await rm(work, { recursive: true, force: true }).catch((err: unknown) => this.options.logger.warn({ work, err: asHypercoreError(err).message }, 'removing a rootfs build directory failed'));
    }
  }
}
