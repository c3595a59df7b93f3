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
export type FileState = 'ok' | 'missing' | 'directory';

/** Checks the real filesystem; a block device is fine as a drive, a directory is not. */
export function checkFile(path: string): FileState {
  const stat = statSync(path, { throwIfNoEntry: false });
  if (!stat) return 'missing';
  return stat.isDirectory() ? 'directory' : 'ok';
}

/** Absolute form of a path value, relative to `base` (the hac.toml's folder or the working directory). */
export function resolvePath(value: string, base: string): string {
  return isAbsolute(value) ? value : resolve(base, value);
}

/** A program is looked up on PATH unless it contains a '/', in which case it is a path like any other. */
export function resolveBinary(value: string | undefined, base: string): string | undefined {
  return value === undefined || !value.includes('/') ? value : resolvePath(value, base);
}

/** The problem text for a file that is not usable, or undefined when it is fine. */
export function fileProblem(state: FileState, resolved: string): string | undefined {
  if (state === 'missing') return `file not found (resolved to ${resolved})`;
  if (state === 'directory') return `is a directory, not a file (resolved to ${resolved})`;
  return undefined;
}
