/**
 * Per-VM writable disks over a shared read-only image, each with a hard upper bound on what the
 * guest can make it take on the host:
 * - a workload VM gets the read-only image plus a scratch disk of exactly `hardware.disk_size`,
 *   an empty ext4 that the guest joins with overlayfs: its root filesystem has that much room for
 *   writes. When the VMM reads qcow2, the scratch disk is a qcow2 overlay of a formatted, empty
 *   template of that size (made once per size, kept read-only in the templates directory), so a
 *   new VM costs a header write instead of an mkfs; otherwise it is a sparse raw file formatted here.
 *   Either way the file can never grow past the size (plus, for qcow2, its few tables);
 * - a VM that boots its own drive gets the image as one writable qcow2 overlay (QEMU; else the
 *   same pair as above), whose virtual size, and so the most its file can grow to, is the larger
 *   of the image and `disk_size` (the guest may grow the filesystem into the rest).
 * qcow2 overlays are written directly (qcow2.ts), in well under a millisecond for any size.
 */
import { chmod, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { VmDisk } from '../core/image.js';
import type { VmDiskOptions } from '../core/ports.js';
import { runCommand } from '../system/command.js';
import { writeQcow2Overlay } from './qcow2.js';

const MiB = 1024 * 1024;

export async function createQcow2Overlay(basePath: string, overlayPath: string, sizeBytes: number): Promise<void> {
  await writeQcow2Overlay(overlayPath, { backingFile: basePath, backingFormat: 'raw', virtualSize: sizeBytes, lazyRefcounts: true });
}

/** A sparse file: takes no space until the guest writes. */
export async function createSparseFile(path: string, bytes: number): Promise<void> {
  const handle = await open(path, 'wx', 0o600);
  try {
    await handle.truncate(bytes);
  } finally {
    await handle.close();
  }
}

/**
 * A sparse ext4 scratch disk. The file reads as zeros, so mkfs need not write inode tables or the
 * journal (a few MiB are written instead of ~130 MiB for 4 GiB), and marks them zeroed so the
 * guest kernel does not write them either. No root reserve: the room is the workload's.
 */
export async function createScratchDisk(path: string, bytes: number): Promise<void> {
  await createSparseFile(path, bytes);
  try {
    await runCommand('mkfs.ext4', ['-q', '-F', '-L', 'hc-scratch', '-m', '0', '-E', 'nodiscard,assume_storage_prezeroed=1', path], { timeoutMs: 60_000 });
  } catch (err) {
    await rm(path, { force: true });
    throw err;
  }
}

/** Where shared, read-only helpers of per-VM disks live. */
export interface VmDiskPlaces {
  /** Formatted empty scratch templates, one per size; without it every scratch disk is formatted anew. */
  scratchTemplates?: string;
}

/** Bump when createScratchDisk formats differently, so old templates are not reused. */
const SCRATCH_TEMPLATE_FORMAT = 1;
/** Template builds in flight, by path: concurrent creates of one size share one mkfs. */
const templateBuilds = new Map<string, Promise<string>>();

/** The formatted, empty, read-only scratch template of `bytes`, made on first use. */
export function scratchTemplate(dir: string, bytes: number): Promise<string> {
  const path = join(dir, `scratch-v${SCRATCH_TEMPLATE_FORMAT}-${bytes}.ext4`);
  let pending = templateBuilds.get(path);
  if (!pending) {
    pending = buildTemplate(dir, path, bytes);
    templateBuilds.set(path, pending);
    // Later calls look on disk again (a template removed by hand is made anew).
    const forget = (): void => void templateBuilds.delete(path);
    pending.then(forget, forget);
  }
  return pending;
}

async function buildTemplate(dir: string, path: string, bytes: number): Promise<string> {
  if (await stat(path).then((s) => s.isFile() && s.size === bytes, () => false)) return path;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // Another daemon process may build the same template: each writes its own file and renames it.
  const tmp = join(dir, `.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await createScratchDisk(tmp, bytes);
    await chmod(tmp, 0o400);
    await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
  return path;
}

export async function createVmImageDisks(basePath: string, stateDir: string, options: VmDiskOptions, places: VmDiskPlaces = {}): Promise<VmDisk[]> {
  const sizeBytes = options.sizeMib * MiB;
  const qcow2 = options.formats.includes('qcow2');
  if (!options.workload && qcow2) {
    const overlay = join(stateDir, 'image.qcow2');
    const base = (await stat(basePath)).size;
    await createQcow2Overlay(basePath, overlay, Math.max(base, sizeBytes));
    return [{ name: 'image', path: overlay, format: 'qcow2', readOnly: false, backing: basePath }];
  }
  const image: VmDisk = { name: 'image', path: basePath, format: 'raw', readOnly: true };
  if (qcow2 && places.scratchTemplates) {
    const scratch = join(stateDir, 'scratch.qcow2');
    await createQcow2Overlay(await scratchTemplate(places.scratchTemplates, sizeBytes), scratch, sizeBytes);
    return [image, { name: 'scratch', path: scratch, format: 'qcow2', readOnly: false }];
  }
  const scratch = join(stateDir, 'scratch.raw');
  await createScratchDisk(scratch, sizeBytes);
  return [image, { name: 'scratch', path: scratch, format: 'raw', readOnly: false }];
}
