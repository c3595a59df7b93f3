/**
 * OCI whiteouts: `.wh.<name>` hides `<name>` of lower layers, `.wh..wh..opq` hides every lower child
 * of its directory. Tar order within a layer is arbitrary, so a marker may come after entries of the
 * same layer in that directory; those must survive. Hence the layer records what it wrote, and a
 * whiteout removes only what it did not write (recursing into directories that hold both).
 */
import { readdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { UnsafeLayerError } from './errors.js';
import { lstatOrNull } from './fsops.js';
import { resolveInRoot } from './paths.js';

export const WHITEOUT_PREFIX = '.wh.';
/** Reserved prefix for AUFS metadata; only the opaque marker is meaningful in OCI layers. */
export const WHITEOUT_META_PREFIX = '.wh..wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';

/** The paths the current layer wrote, and their ancestors; everything else under the root is "lower". */
export class LowerTree {
  private readonly touched = new Set<string>();

  /** `onRemoveDirectory` lets the writer drop caches that a removed directory invalidates. */
  constructor(
    private readonly root: string,
    private readonly onRemoveDirectory: () => void,
  ) {}

  /** Records a real path (no symlinks) written by this layer, with its ancestors up to the root. */
  markWritten(path: string): void {
    // Stopping at the first known ancestor is enough: its own ancestors were added with it.
    for (let p = path; p.length > this.root.length && !this.touched.has(p); p = dirname(p)) this.touched.add(p);
  }

  /**
   * Removes `path` as far as it came from lower layers: untouched paths go entirely (recursively,
   * without following symlinks); a directory this layer wrote into keeps its new children only.
   */
  async removeLower(path: string): Promise<void> {
    const st = await lstatOrNull(path);
    if (st === null) return;
    if (this.touched.has(path)) {
      if (st.isDirectory()) await this.pruneChildren(path);
      return;
    }
    await rm(path, { recursive: true, force: true });
    if (st.isDirectory()) this.onRemoveDirectory();
  }

  /** The opaque-directory rule: every lower child of `dir` goes. */
  async pruneChildren(dir: string): Promise<void> {
    for (const child of await readdir(dir)) await this.removeLower(join(dir, child));
  }
}

/**
 * Applies the whiteout entry `name` (already split into clean `parts`, last one starting with
 * `.wh.`). The directory holding the marker is resolved inside the root like any parent; if it does
 * not exist there is nothing to hide. The marker itself is never created.
 */
export async function applyWhiteout(root: string, lower: LowerTree, name: string, parts: readonly string[]): Promise<void> {
  const base = parts[parts.length - 1]!;
  const dir = await resolveInRoot(root, parts.slice(0, -1).join('/'), name);
  if ((await lstatOrNull(dir))?.isDirectory() !== true) return;
  if (base === OPAQUE_MARKER) return lower.pruneChildren(dir);
  // Other AUFS metadata (.wh..wh.plnk hardlink store, .wh..wh.aufs): ignored, as containerd does.
  if (base.startsWith(WHITEOUT_META_PREFIX)) return;
  const target = base.slice(WHITEOUT_PREFIX.length);
  if (target === '' || target === '.' || target === '..') {
    throw new UnsafeLayerError('whiteout-name', name, `whiteout ${JSON.stringify(base)} names no entry of its directory`);
  }
  await lower.removeLower(join(dir, target));
}
