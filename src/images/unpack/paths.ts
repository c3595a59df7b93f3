/**
 * Path handling for untrusted layers: tar names are cleaned into components before they touch the
 * filesystem, and every existing path is resolved inside the root (securejoin semantics), so neither
 * a `..` nor a symlink planted by this or an earlier layer can lead a write outside the root.
 */
import { lstat, readlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { UnsafeLayerError, type UnpackRule } from './errors.js';

/** Symlinks followed while resolving one path before it counts as a loop (the bound filepath-securejoin uses). */
export const MAX_SYMLINK_FOLLOWS = 255;

/**
 * Splits a tar entry name into clean components ([] = the root itself).
 *
 * Absolute names are rooted at the root directory (`/etc/x` → `etc/x`), as Docker and GNU tar do.
 * `.` and empty components are dropped and `a/../b` is folded lexically, but a `..` that climbs
 * above the top is refused rather than clamped: no honest layer writer produces one.
 */
export function entryComponents(name: string, entryPath: string = name, rule: UnpackRule = 'path-escape'): string[] {
  if (name.includes('\0')) throw new UnsafeLayerError('invalid-name', entryPath, 'name contains a NUL byte');
  const out: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length === 0) throw new UnsafeLayerError(rule, entryPath, `${JSON.stringify(name)} climbs out of the root directory`);
      out.pop();
      continue;
    }
    out.push(part);
  }
  return out;
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/**
 * Resolves `relPath` inside `rootDir` the way a chroot would: symlinks are followed, but an absolute
 * target restarts at `rootDir` and `..` stops at `rootDir`, so the result is always `rootDir` or below
 * it. Components that do not exist are appended as they are (the caller may create them). Throws an
 * UnsafeLayerError after 255 symlinks (a loop), naming `entryPath` (the tar entry being applied).
 *
 * Not race-free against a concurrent writer inside the root (that needs openat2 RESOLVE_IN_ROOT);
 * the unpacker is the only writer while it runs.
 */
export async function resolveInRoot(rootDir: string, relPath: string, entryPath: string = relPath): Promise<string> {
  const root = resolve(rootDir);
  // Components still to walk, in reverse so the next one is a cheap pop().
  let pending = relPath.split('/').reverse();
  let resolved: string[] = [];
  let follows = 0;
  while (pending.length > 0) {
    const part = pending.pop()!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    if (part.includes('\0')) throw new UnsafeLayerError('invalid-name', entryPath, 'path contains a NUL byte');
    // Always lstat, even below a missing component: a later `..` can climb back into existing
    // directories, where a symlink must be followed again rather than passed through lexically.
    const candidate = join(root, ...resolved, part);
    try {
      const st = await lstat(candidate);
      if (st.isSymbolicLink()) {
        if (++follows > MAX_SYMLINK_FOLLOWS) {
          throw new UnsafeLayerError('symlink-loop', entryPath, `more than ${MAX_SYMLINK_FOLLOWS} symlinks while resolving ${JSON.stringify(relPath)}`);
        }
        const target = await readlink(candidate);
        if (target.startsWith('/')) resolved = [];
        pending = pending.concat(target.split('/').reverse());
        continue;
      }
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
    resolved.push(part);
  }
  return join(root, ...resolved);
}
