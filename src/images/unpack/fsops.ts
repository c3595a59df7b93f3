/**
 * Filesystem primitives for one entry. Callers pass a path whose parent is already resolved inside
 * the root; every primitive here creates the final component itself (O_EXCL / mkdir / symlink /
 * link / mknod all fail with EEXIST on an existing name and never follow a final symlink), so an
 * existing symlink is never written through: the caller clears the name and tries again.
 */
import { constants, fchmodSync, fchownSync, futimesSync, type Stats } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, open, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { runCommand } from '../../system/command.js';

/** Ownership, permissions and times from the tar header (numeric ids, never mapped through /etc/passwd). */
export interface EntryMeta {
  /** Permission bits including setuid/setgid/sticky (07777). */
  mode: number;
  uid: number;
  gid: number;
  atime: Date;
  mtime: Date;
}

/** lstat, with "nothing there" (ENOENT, or a parent that is not a directory) as null. */
export async function lstatOrNull(path: string): Promise<Stats | null> {
  try {
    return await lstat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw err;
  }
}

/**
 * Clears `path` for a new entry: anything but a directory is unlinked; a directory is removed
 * recursively unless the new entry is a directory too (lower-layer directories are merged).
 * `rm` uses lstat, so a symlink found inside a removed directory is unlinked, not followed.
 * Returns what was there.
 */
export async function clearPath(path: string, keepDirectory: boolean): Promise<'none' | 'kept-directory' | 'removed-directory' | 'removed'> {
  const st = await lstatOrNull(path);
  if (st === null) return 'none';
  if (st.isDirectory()) {
    if (keepDirectory) return 'kept-directory';
    await rm(path, { recursive: true, force: true });
    return 'removed-directory';
  }
  await unlink(path);
  return 'removed';
}

/**
 * Writes a regular file from `data`; fails with EEXIST if the name is taken (O_EXCL, and O_NOFOLLOW
 * for good measure). Owner before mode: chown clears setuid/setgid on Linux, so the mode (with
 * those bits) must come last. The metadata calls go through the fd, synchronously: they are
 * microsecond syscalls that cannot block on data I/O, and three thread-pool round trips per file
 * cost a quarter of the unpack time on a tree of small files.
 */
export async function writeFileEntry(path: string, data: AsyncIterable<Buffer>, meta: EntryMeta): Promise<void> {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  const fh = await open(path, flags, 0o600);
  try {
    await writeFile(fh, data); // streams the entry: the module-level writeFile takes async iterables
    fchownSync(fh.fd, meta.uid, meta.gid);
    fchmodSync(fh.fd, meta.mode);
    futimesSync(fh.fd, meta.atime, meta.mtime);
  } finally {
    await fh.close();
  }
}

/**
 * Creates the directory, or merges with one already there (a lower layer's), replacing anything
 * else at the name; then sets owner and mode. `existing` skips creation (the root itself). Times
 * are set by the caller at the end of the layer.
 */
export async function makeDirectory(path: string, meta: EntryMeta, existing = false): Promise<void> {
  if (!existing) {
    try {
      await mkdir(path, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if ((await clearPath(path, true)) !== 'kept-directory') await mkdir(path, { mode: 0o700 });
    }
  }
  await lchown(path, meta.uid, meta.gid);
  await chmod(path, meta.mode); // a directory, not a symlink: lstat said so, or we just made it
}

/** The target is stored verbatim: it is only ever resolved later, inside the root, by resolveInRoot. */
export async function makeSymlink(path: string, target: string, meta: EntryMeta): Promise<void> {
  await symlink(target, path);
  await lchown(path, meta.uid, meta.gid);
  await lutimes(path, meta.atime, meta.mtime);
}

/** link(2) does not follow a symlink at `existing`: linking to a symlink links the symlink itself. */
export async function makeHardlink(path: string, existing: string): Promise<void> {
  await link(existing, path);
}

/** The tar entry types made with mknod/mkfifo. */
export type NodeKind = 'character-device' | 'block-device' | 'fifo';

/**
 * Device nodes and fifos via mknod/mkfifo (Node has no mknod): as root, the way containerd unpacks
 * them when not rootless. Created 0600 first so the node is never briefly more open than intended.
 */
export async function makeNode(path: string, kind: NodeKind, major: number, minor: number, meta: EntryMeta): Promise<void> {
  if (kind === 'fifo') {
    await runCommand('mkfifo', ['-m', '0600', path], { timeoutMs: 10_000 });
  } else {
    const letter = kind === 'character-device' ? 'c' : 'b';
    await runCommand('mknod', ['-m', '0600', path, letter, String(major), String(minor)], { timeoutMs: 10_000 });
  }
  await lchown(path, meta.uid, meta.gid);
  await chmod(path, meta.mode);
  await lutimes(path, meta.atime, meta.mtime);
}
