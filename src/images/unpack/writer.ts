/**
 * Applies the entries of one layer to a root directory, one at a time, in tar order: limits first,
 * then a clean name, then a parent resolved inside the root, then the entry itself.
 */
import { chmod, lutimes, mkdir } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import type { Header } from 'tar-stream';
import { CorruptLayerError, LayerLimitError, UnsafeLayerError, UnsupportedLayerError } from './errors.js';
import { clearPath, lstatOrNull, makeDirectory, makeHardlink, makeNode, makeSymlink, writeFileEntry, type EntryMeta, type NodeKind } from './fsops.js';
import type { LayerMeter, UnpackBudget, UnpackLimits, UnpackStats } from './limits.js';
import { entryComponents, resolveInRoot } from './paths.js';
import { LowerTree, WHITEOUT_PREFIX, applyWhiteout } from './whiteouts.js';

/**
 * A parsed header as tar-stream really delivers it: `type` is null for types it does not know
 * (GNU sparse...), and PAX records it does not interpret (uid, gid, mtime, atime) stay in `pax`.
 */
export type TarHeader = Omit<Header, 'type' | 'pax'> & { type: Header['type'] | null; pax?: Record<string, string> | null };

/** Reads a PAX number (`uid=3000000`, `mtime=1700000000.123`) over the ustar field, which may overflow. */
function paxNumber(pax: Record<string, string> | null | undefined, key: string, fallback: number): number {
  const raw = pax?.[key];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  return Number.isFinite(value) ? value : fallback;
}

/** Ids beyond 2^32-2 (or negative, or fractional) cannot be chown'ed; fall back to the ustar field rather than fail late. */
function paxId(pax: Record<string, string> | null | undefined, key: string, fallback: number): number {
  const value = paxNumber(pax, key, fallback);
  return Number.isInteger(value) && value >= 0 && value < 0xffffffff ? value : fallback;
}

/** Owner, mode and times of an entry: PAX records win over the (overflowable) ustar fields. */
export function entryMeta(header: TarHeader): EntryMeta {
  const mtimeSec = paxNumber(header.pax, 'mtime', (header.mtime?.getTime() ?? 0) / 1000);
  const atimeSec = paxNumber(header.pax, 'atime', mtimeSec);
  return {
    // Some writers put the file-type bits in the mode field too; only permission bits are ours to set.
    mode: (header.mode ?? 0o644) & 0o7777,
    uid: paxId(header.pax, 'uid', header.uid ?? 0),
    gid: paxId(header.pax, 'gid', header.gid ?? 0),
    atime: new Date(atimeSec * 1000),
    mtime: new Date(mtimeSec * 1000),
  };
}

/**
 * The state of applying one layer: what it wrote (for whiteouts), which directories are known to be
 * real (to skip re-resolving parents), and the directory times to set at the end.
 */
export class LayerWriter {
  readonly stats: UnpackStats = { entries: 0, bytes: 0, whiteouts: 0 };
  private readonly lower: LowerTree;
  /**
   * Directories known to exist with no symlink anywhere on their path, so a child can be created
   * under them without resolving again. Cleared whenever a directory is removed, because that is
   * the only way one of these paths can turn into something else.
   */
  private readonly realDirs = new Set<string>();
  /** Directory times are set last: creating children afterwards would bump them again. */
  private readonly dirTimes = new Map<string, EntryMeta>();

  constructor(
    private readonly root: string,
    private readonly limits: UnpackLimits,
    private readonly budget: UnpackBudget,
    private readonly meter: LayerMeter,
  ) {
    this.lower = new LowerTree(root, () => this.realDirs.clear());
  }

  /** Applies one entry; `data` is the entry's content stream (always fully consumed or the layer fails). */
  async apply(header: TarHeader, data: AsyncIterable<Buffer>): Promise<void> {
    const name = header.name;
    this.meter.lastEntry = name;
    this.count(name, header.size ?? 0);
    const parts = entryComponents(name);
    const base = parts[parts.length - 1];
    if (base !== undefined && base.startsWith(WHITEOUT_PREFIX)) {
      this.stats.whiteouts++;
      this.budget.whiteouts++;
      await applyWhiteout(this.root, this.lower, name, parts);
      return drain(data);
    }
    const meta = entryMeta(header);
    switch (header.type) {
      case 'directory':
        return this.directory(name, parts, meta);
      case 'file':
      case 'contiguous-file':
        return this.file(name, parts, data, meta);
      case 'symlink':
        return this.symlink(name, parts, header.linkname ?? '', meta, data);
      case 'link':
        return this.hardlink(name, parts, header.linkname ?? '', data);
      case 'character-device':
      case 'block-device':
      case 'fifo':
        return this.node(name, parts, header.type, header, meta, data);
      default:
        throw new UnsupportedLayerError('unsupported-entry-type', name, `tar entry type ${String(header.type)} (e.g. GNU sparse) is not supported`);
    }
  }

  /** Sets the deferred directory times; a directory replaced or moved under a symlink since is skipped. */
  async finish(): Promise<void> {
    for (const [path, meta] of this.dirTimes) {
      // Only a path still free of symlinks may be touched by path: anything else could lead outside.
      const valid = this.realDirs.has(path) || (await resolveInRoot(this.root, relative(this.root, path)).catch(() => '')) === path;
      if (!valid) continue;
      const st = await lstatOrNull(path);
      if (st?.isDirectory()) await lutimes(path, meta.atime, meta.mtime);
    }
  }

  /** Entry and byte limits are checked on the declared size, before a byte of the entry is written. */
  private count(name: string, size: number): void {
    this.stats.entries++;
    this.meter.entries++;
    if (++this.budget.entries > this.limits.maxEntries) {
      throw new LayerLimitError('max-entries', name, `more than ${this.limits.maxEntries} entries`);
    }
    const maxEntry = this.limits.maxEntryBytes ?? this.limits.maxTotalBytes;
    if (size > maxEntry) {
      throw new LayerLimitError('max-entry-bytes', name, `declared size ${size} bytes exceeds the per-entry limit of ${maxEntry} bytes`);
    }
    if (this.budget.bytes + size > this.limits.maxTotalBytes) {
      throw new LayerLimitError('max-total-bytes', name, `${this.budget.bytes + size} bytes in total would exceed the limit of ${this.limits.maxTotalBytes} bytes`);
    }
    this.budget.bytes += size;
    this.stats.bytes += size;
    this.meter.declared += size;
  }

  /**
   * The parent of `parts`, resolved inside the root and created (0755) if missing, since layers
   * may omit parent directory entries.
   */
  private async parentDir(name: string, parent: string[]): Promise<string> {
    if (parent.length === 0) return this.root;
    const lexical = join(this.root, ...parent);
    if (this.realDirs.has(lexical)) return lexical;
    const real = await resolveInRoot(this.root, parent.join('/'), name);
    const st = await lstatOrNull(real);
    if (st === null) {
      try {
        // Missing components were appended lexically by resolveInRoot, so they hold no symlinks.
        const first = await mkdir(real, { recursive: true });
        // 0755 whatever the daemon's umask, as containerd's implied parents are.
        for (let dir = real; first !== undefined && dir.length >= first.length; dir = dirname(dir)) await chmod(dir, 0o755);
      } catch (err) {
        throw new CorruptLayerError('parent-not-directory', name, `cannot create the parent directory: ${(err as Error).message}`, err);
      }
    } else if (!st.isDirectory()) {
      throw new CorruptLayerError('parent-not-directory', name, `parent ${JSON.stringify(relative(this.root, real))} exists and is not a directory`);
    }
    this.realDirs.add(real);
    return real;
  }

  /** Where the entry goes: its parent resolved (and created) inside the root, plus the final name, not followed. */
  private async locate(name: string, parts: string[], keepDirectory: boolean): Promise<string> {
    if (parts.length === 0) {
      if (keepDirectory) return this.root;
      throw new CorruptLayerError('root-not-directory', name, 'only a directory entry may name the root');
    }
    const parent = await this.parentDir(name, parts.slice(0, -1));
    return join(parent, parts[parts.length - 1]!);
  }

  /** Clears the name for a new entry; a removed directory invalidates the cached real paths. */
  private async clear(path: string): Promise<void> {
    if ((await clearPath(path, false)) === 'removed-directory') this.realDirs.clear();
  }

  /**
   * Runs `make`, which fails with EEXIST instead of touching an existing name; then clears the name
   * and runs it again. Trying first saves an lstat per entry, and most names are new.
   */
  private async create(path: string, make: () => Promise<void>): Promise<void> {
    try {
      await make();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      await this.clear(path);
      await make();
    }
    this.lower.markWritten(path);
  }

  private async directory(name: string, parts: string[], meta: EntryMeta): Promise<void> {
    const path = await this.locate(name, parts, true);
    await makeDirectory(path, meta, path === this.root);
    this.realDirs.add(path);
    this.dirTimes.set(path, meta);
    this.lower.markWritten(path);
  }

  private async file(name: string, parts: string[], data: AsyncIterable<Buffer>, meta: EntryMeta): Promise<void> {
    const path = await this.locate(name, parts, false);
    await this.create(path, () => writeFileEntry(path, data, meta)); // open fails before any data is read
  }

  private async symlink(name: string, parts: string[], target: string, meta: EntryMeta, data: AsyncIterable<Buffer>): Promise<void> {
    if (target === '' || target.includes('\0')) throw new CorruptLayerError('invalid-name', name, 'symlink with an empty or NUL-containing target');
    const path = await this.locate(name, parts, false);
    await this.create(path, () => makeSymlink(path, target, meta));
    await drain(data);
  }

  /** Device nodes and fifos: mknod reports an existing name only as an exit status, so clear first. */
  private async node(name: string, parts: string[], kind: NodeKind, header: TarHeader, meta: EntryMeta, data: AsyncIterable<Buffer>): Promise<void> {
    const path = await this.locate(name, parts, false);
    await this.clear(path);
    await makeNode(path, kind, header.devmajor ?? 0, header.devminor ?? 0, meta);
    this.lower.markWritten(path);
    await drain(data);
  }

  /**
   * Hardlink names are archive-relative. A `..` that climbs out is refused; symlinks on the way are
   * resolved inside the root (so they cannot escape either) and the target itself is not followed.
   */
  private async hardlink(name: string, parts: string[], linkname: string, data: AsyncIterable<Buffer>): Promise<void> {
    const targetParts = entryComponents(linkname, name, 'hardlink-escape');
    if (targetParts.length === 0) throw new UnsafeLayerError('hardlink-target-directory', name, 'hardlink to the root directory');
    const targetParent = await resolveInRoot(this.root, targetParts.slice(0, -1).join('/'), name);
    const target = join(targetParent, targetParts[targetParts.length - 1]!);
    const st = await lstatOrNull(target);
    if (st === null) throw new CorruptLayerError('hardlink-target-missing', name, `hardlink target ${JSON.stringify(linkname)} does not exist inside the root`);
    if (st.isDirectory()) throw new UnsafeLayerError('hardlink-target-directory', name, `hardlink target ${JSON.stringify(linkname)} is a directory`);
    const path = await this.locate(name, parts, false);
    if (path === target) return drain(data); // a link to itself: the file is already there
    await this.create(path, () => makeHardlink(path, target));
    await drain(data);
  }
}

/** Consumes what is left of an entry's data so the tar parser can move on. */
async function drain(data: AsyncIterable<Buffer>): Promise<void> {
  for await (const chunk of data) void chunk;
}
