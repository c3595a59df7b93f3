/**
 * Writes the metadata's files and SSH keys into the workload's root filesystem before the workload
 * starts. The image is hostile: any directory on the way may be a symlink, absolute or full of
 * `..`, meant to make the agent (root, outside the container) write into the guest's own system.
 * So every path is resolved here the way the container will see it, as if the rootfs were `/`:
 * symlinks are followed inside the rootfs only, `..` stops at its root, and the file itself is
 * written under a fresh name and renamed into place, which replaces a symlink rather than
 * following it. Nothing else writes to the rootfs meanwhile (the workload has not started).
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, lstat, mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { AUTHORIZED_KEYS_PATH, guestPathProblem, MAX_METADATA_FILES, MAX_METADATA_FILES_BYTES } from '../core/metadata.js';
import { UnsafeLayerError } from '../images/unpack/errors.js';
import { MAX_SYMLINK_FOLLOWS, resolveInRoot } from '../images/unpack/paths.js';
import { Code, TtrpcError } from '../ttrpc/index.js';
import { errorText } from './log.js';
import type { GuestFile } from './protocol/messages.js';

function refused(path: string, why: string): TtrpcError {
  return new TtrpcError(Code.FAILED_PRECONDITION, `cannot write metadata file ${path}: ${why}`);
}

/**
 * The real directory, under `rootfs`, that `dir` (absolute, as the container sees it) stands for,
 * creating what is missing with `mode`: symlinks resolve inside `rootfs` as the image unpacker
 * resolves them, and every part on the way must be a directory.
 */
async function resolveDirectory(rootfs: string, dir: string, mode: number, path: string): Promise<string> {
  let resolved: string;
  try {
    resolved = await resolveInRoot(rootfs, dir, path);
  } catch (err) {
    if (err instanceof UnsafeLayerError && err.rule === 'symlink-loop') throw refused(path, `more than ${MAX_SYMLINK_FOLLOWS} symlinks on the way (a loop?)`);
    throw err;
  }
  let at = rootfs;
  for (const name of relative(rootfs, resolved).split('/').filter(Boolean)) {
    at = join(at, name);
    const stat = await lstat(at).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (stat === undefined) {
      await mkdir(at);
      await chmod(at, mode); // whatever the agent's umask
    } else if (!stat.isDirectory()) {
      throw refused(path, `/${relative(rootfs, at)} is not a directory in the image`);
    }
  }
  return resolved;
}

/** Writes one file: a fresh name in the resolved directory, mode and owner set, then renamed over the old entry. */
async function writeOne(rootfs: string, file: GuestFile, dirMode: number): Promise<void> {
  const problem = guestPathProblem(file.path);
  if (problem) throw new TtrpcError(Code.INVALID_ARGUMENT, `metadata file path ${JSON.stringify(file.path)}: ${problem}`);
  if (file.mode > 0o777) throw new TtrpcError(Code.INVALID_ARGUMENT, `metadata file ${file.path}: mode ${file.mode.toString(8)} has bits beyond 0777`);
  const name = basename(file.path);
  try {
    const dir = await resolveDirectory(rootfs, dirname(file.path), dirMode, file.path);
    const target = join(dir, name);
    const existing = await lstat(target).catch(() => undefined);
    if (existing?.isDirectory()) throw refused(file.path, 'it is a directory in the image');
    const temporary = join(dir, `.hc-metadata-${randomBytes(6).toString('hex')}`);
    const handle = await open(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      await handle.writeFile(file.content);
      // Owner before mode: chown clears set-id bits, and the mode is the one asked for.
      await handle.chown(file.uid, file.gid);
      await handle.chmod(file.mode);
      await handle.close();
      await rename(temporary, target);
    } catch (err) {
      await handle.close().catch(() => undefined);
      await rm(temporary, { force: true });
      throw err;
    }
  } catch (err) {
    if (err instanceof TtrpcError) throw err;
    throw refused(file.path, errorText(err));
  }
}

/**
 * Writes `files`, then `sshKeys` as root's authorized_keys (replacing the image's: the keys are the
 * VM's). Missing directories are created owned by root, mode 0755 (0700 on the way to the keys).
 */
export async function writeMetadataFiles(rootfs: string, files: readonly GuestFile[], sshKeys: readonly string[]): Promise<void> {
  // The host checked the budget already; a guest bounds what it is handed all the same.
  const bytes = files.reduce((n, f) => n + Buffer.byteLength(f.path) + f.content.byteLength, 0) + sshKeys.reduce((n, k) => n + Buffer.byteLength(k) + 1, 0);
  if (files.length > MAX_METADATA_FILES || bytes > MAX_METADATA_FILES_BYTES) {
    throw new TtrpcError(Code.INVALID_ARGUMENT, `metadata files: ${files.length} files of ${bytes} bytes; at most ${MAX_METADATA_FILES} files of ${MAX_METADATA_FILES_BYTES} bytes are allowed`);
  }
  for (const file of files) await writeOne(rootfs, file, 0o755);
  if (sshKeys.length > 0) {
    const content = Buffer.from(sshKeys.map((k) => `${k}\n`).join(''));
    await writeOne(rootfs, { path: AUTHORIZED_KEYS_PATH, mode: 0o600, uid: 0, gid: 0, content }, 0o700);
  }
}
