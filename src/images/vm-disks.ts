/**
 * Per-VM writable disks over a shared read-only image, each with a hard upper bound on what the
 * guest can make it take on the host:
 * - a workload VM gets the read-only image plus a scratch disk of exactly `hardware.disk_size`,
 *   formatted here, that the guest joins with overlayfs: its root filesystem has that much room
 *   for writes, and the scratch file (sparse) can never grow past its size;
 * - a VM that boots its own drive gets the image as one writable qcow2 overlay (QEMU; else the
 *   same pair as above), whose virtual size, and so the most its file can grow to, is the larger
 *   of the image and `disk_size` (the guest may grow the filesystem into the rest).
 */
import { open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { VmDisk } from '../core/image.js';
import type { VmDiskOptions } from '../core/ports.js';
import { runCommand } from '../system/command.js';

const MiB = 1024 * 1024;

export async function createQcow2Overlay(basePath: string, overlayPath: string, sizeBytes: number): Promise<void> {
  await runCommand('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'lazy_refcounts=on', '-b', basePath, '-F', 'raw', overlayPath, String(sizeBytes)], { timeoutMs: 30_000 });
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

export async function createVmImageDisks(basePath: string, stateDir: string, options: VmDiskOptions): Promise<VmDisk[]> {
  const sizeBytes = options.sizeMib * MiB;
  if (!options.workload && options.formats.includes('qcow2')) {
    const overlay = join(stateDir, 'image.qcow2');
    const base = (await stat(basePath)).size;
    await createQcow2Overlay(basePath, overlay, Math.max(base, sizeBytes));
    return [{ name: 'image', path: overlay, format: 'qcow2', readOnly: false, backing: basePath }];
  }
  const scratch = join(stateDir, 'scratch.raw');
  await createScratchDisk(scratch, sizeBytes);
  return [
    { name: 'image', path: basePath, format: 'raw', readOnly: true },
    { name: 'scratch', path: scratch, format: 'raw', readOnly: false },
  ];
}
