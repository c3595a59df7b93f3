/**
 * Where a path in hac.toml points: relative paths in the file are relative to the file's folder
 * (so a VM folder can be moved as a whole), relative paths given as CLI flags to the working
 * directory (as a shell user expects), and the files the VM needs must exist before we boot.
 */
import { statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';

/** Keys whose value is a file that must exist when given. */
export const requiredFileKeys: readonly (readonly string[])[] = [
  ['hardware', 'kernel'],
  ['hardware', 'initrd'],
  ['hardware', 'drive'],
];

/** What is at a path, as far as a VM's file argument cares. */
export type FileState = 'ok' | 'missing' | 'directory' | 'not-regular' | 'not-disk';

/**
 * Checks the real filesystem (following symlinks, as the VMM will): a kernel or initrd must be a
 * regular file; a disk may also be a block device. A FIFO or a character device (/dev/zero,
 * /dev/stdin) would hang or feed the VMM endless bytes.
 */
export function checkFile(path: string, kind: 'file' | 'disk'): FileState {
  const stat = statSync(path, { throwIfNoEntry: false });
  if (!stat) return 'missing';
  if (stat.isDirectory()) return 'directory';
  if (stat.isFile()) return 'ok';
  if (kind === 'disk') return stat.isBlockDevice() ? 'ok' : 'not-disk';
  return 'not-regular';
}

/** The kind of file a path key names: `drive` is a disk, the rest are files. */
export function fileKindOf(key: readonly string[]): 'file' | 'disk' {
  return key.at(-1) === 'drive' ? 'disk' : 'file';
}

/** Absolute form of a path value, relative to `base` (the hac.toml's folder or the working directory). */
export function resolvePath(value: string, base: string): string {
  return isAbsolute(value) ? value : resolve(base, value);
}

/** A program is looked up on PATH unless it contains a '/', in which case it is a path like any other. */
export function resolveBinary(value: string | undefined, base: string): string | undefined {
  return value === undefined || !value.includes('/') ? value : resolvePath(value, base);
}

/**
 * The problem text for a file that is not usable, or undefined when it is fine. `where` says
 * where the path was looked for: `(resolved to /abs/path)` for files, `on the daemon's host` for the API.
 */
export function fileProblem(state: FileState, where: string): string | undefined {
  if (state === 'missing') return `file not found ${where}`;
  if (state === 'directory') return `is a directory, not a file ${where}`;
  if (state === 'not-regular') return `is not a regular file ${where}`;
  if (state === 'not-disk') return `is neither a regular file nor a block device ${where}`;
  return undefined;
}
