/**
 * Per-VM writable layers over a shared read-only image: a qcow2 overlay for VMMs that read qcow2
 * (QEMU; milliseconds, flat in image size), else the read-only base plus a sparse scratch disk that
 * the guest joins with overlayfs.
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { VmDisk } from '../core/image.js';
import { runCommand } from '../system/command.js';

export const SCRATCH_DISK_BYTES = 4 * 1024 * 1024 * 1024;

export async function createQcow2Overlay(basePath: string, overlayPath: string): Promise<void> {
  await runCommand('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'lazy_refcounts=on', '-b', basePath, '-F', 'raw', overlayPath], { timeoutMs: 30_000 });
}

/** A sparse file: takes no space until the guest writes. The guest formats it at first use. */
export async function createSparseFile(path: string, bytes: number): Promise<void> {
  const handle = await open(path, 'wx', 0o600);
  try {
    await handle.truncate(bytes);
  } finally {
    await handle.close();
  }
}

export async function createVmImageDisks(basePath: string, stateDir: string, formats: readonly ('raw' | 'qcow2')[]): Promise<VmDisk[]> {
  if (formats.includes('qcow2')) {
    const overlay = join(stateDir, 'image.qcow2');
    await createQcow2Overlay(basePath, overlay);
    return [{ name: 'image', path: overlay, format: 'qcow2', readOnly: false }];
  }
  const scratch = join(stateDir, 'scratch.raw');
  await createSparseFile(scratch, SCRATCH_DISK_BYTES);
  return [
    { name: 'image', path: basePath, format: 'raw', readOnly: true },
    { name: 'scratch', path: scratch, format: 'raw', readOnly: false },
  ];
}
