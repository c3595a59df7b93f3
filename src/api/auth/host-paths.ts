/**
 * Which host files an API caller may make the daemon open or run. On the unix socket the caller is
 * root already, so anything goes. A remote caller may name only files under the directories the
 * daemon's configuration allows: kernel, initrd, drive, a VMM binary, an archive to import.
 *
 * A path is judged twice: as written (after `..` is folded), so that a path outside is refused
 * without the daemon ever looking at it (a caller must not learn which host files exist); then
 * with every symlink resolved, so that a link inside an allowed directory cannot lead out of it.
 * The resolved path is what the daemon then uses.
 *
 * Host bridges are host resources too: a VM in `mode = "bridge"` sits on that host network with no
 * Hypercore firewall between them (an office LAN, a storage network), so a remote caller may join
 * only the bridges the configuration names.
 */
import { realpathSync } from 'node:fs';
import { dirname, isAbsolute, resolve, sep } from 'node:path';
import { ConfigInvalidError } from '../../core/errors.js';

export type HostPathPolicy =
  | { readonly kind: 'any' }
  | { readonly kind: 'within'; readonly dirs: readonly string[]; readonly realDirs: readonly string[]; readonly bridges: readonly string[] };

export const anyHostPath: HostPathPolicy = { kind: 'any' };

/** A policy for remote callers; each directory must exist (`from` names the setting, for the error). */
export function hostPathsWithin(dirs: readonly string[], from: string, bridges: readonly string[] = []): HostPathPolicy {
  const realDirs: string[] = [];
  for (const dir of dirs) {
    try {
      realDirs.push(realpathSync(dir));
    } catch (err) {
      throw new ConfigInvalidError(`${from} = ${JSON.stringify(dir)}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such directory' : String(err)}`, [{ path: from, message: 'no such directory', value: dir }]);
    }
  }
  return { kind: 'within', dirs: dirs.map((d) => resolve(d)), realDirs, bridges: [...bridges] };
}

function inside(dirs: readonly string[], path: string): boolean {
  return dirs.some((dir) => path === dir || path.startsWith(dir.endsWith(sep) ? dir : dir + sep));
}

/** The path to use (resolved for remote callers), or why it is refused. */
export type Admission = { path: string } | { denied: string };

export function admitHostPath(policy: HostPathPolicy, path: string, kind: 'file' | 'program'): Admission {
  if (policy.kind === 'any') return { path };
  const allowed = policy.dirs.length === 0 ? 'no directories are allowed (hypercored --allow-host-path)' : `allowed: ${policy.dirs.join(', ')}`;
  if (kind === 'program' && !path.includes('/')) return { denied: `a remote caller must name the program by its absolute path under an allowed directory (${allowed})` };
  if (!isAbsolute(path)) return { denied: `must be an absolute path under an allowed directory (${allowed})` };
  const written = resolve(path);
  if (!inside(policy.dirs, written) && !inside(policy.realDirs, written)) return { denied: `is outside the directories remote callers may use (${allowed})` };
  const { real, exists } = realPrefix(written);
  if (!inside(policy.realDirs, real)) return { denied: `leads outside the directories remote callers may use through a symbolic link (${allowed})` };
  // A missing file is reported by the caller's own checks, as it would be on the unix socket.
  return { path: exists ? real : written };
}

/** Whether the caller may put a VM's TAP on the host bridge `name`, or why not. */
export function admitBridge(policy: HostPathPolicy, name: string): { denied: string } | undefined {
  if (policy.kind === 'any' || policy.bridges.includes(name)) return undefined;
  const allowed = policy.bridges.length === 0 ? 'no bridges are allowed (hypercored --allow-bridge)' : `allowed: ${policy.bridges.join(', ')}`;
  return { denied: `is a host bridge remote callers may not join (${allowed})` };
}

/** The real path of `path`, or of its deepest ancestor that exists (a missing file's folder may still be a link out). */
function realPrefix(path: string): { real: string; exists: boolean } {
  for (let candidate = path, exists = true; ; candidate = dirname(candidate), exists = false) {
    try {
      return { real: realpathSync(candidate), exists };
    } catch {
      if (candidate === dirname(candidate)) return { real: candidate, exists: false };
    }
  }
}
