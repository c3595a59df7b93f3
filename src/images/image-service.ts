/**
 * Images end to end: pull (or import) into the content store, record the reference, and build the
 * read-only ext4 block image once per manifest digest; per-VM writable disks on top of it.
 * Concurrent pulls of one reference, and concurrent builds of one digest, share a single run.
 * Pulls, imports and disk creation hold the store lock shared, prune holds it exclusively, so a
 * prune never removes what one of them is about to use.
 */
import { mkdir, mkdtemp, rename, rm, stat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ImageInUseError, ImageNotFoundError } from '../core/errors.js';
import type { Image, PullProgress, VmDisk } from '../core/image.js';
import type { ImageProvisioner, ImageStore, Logger, VmDiskOptions } from '../core/ports.js';
import { buildExt4Image } from './block-image.js';
import { ContentStore, digestHex } from './content-store.js';
import type { ImageSource, ImageDescription } from './image-source.js';
import { StoreLock } from './store-lock.js';
import { checkFreeSpace, checkImageSize, DEFAULT_STORE_LIMITS, type StoreLimits } from './store-limits.js';
import { createVmImageDisks } from './vm-disks.js';
import { unpackLayers, type UnpackLimits } from './unpack/index.js';

export const DEFAULT_PLATFORM = 'linux/amd64';
const PARALLEL_LAYER_DOWNLOADS = 3;

export interface ImageServiceOptions {
  /** `<root>/images`: blobs/, blocks/, scratch/ (empty scratch disk templates, one per disk size), tmp/. */
  dir: string;
  store: ImageStore;
  registry: ImageSource;
  /** Normalises user input (`alpine` → `docker.io/library/alpine:latest`). */
  normalize: (reference: string) => string;
  /** Names of VMs using an image digest, so in-use images are not deleted. */
  usersOf: (digest: string) => string[];
  logger: Logger;
  unpackLimits?: Partial<UnpackLimits>;
  /** Blob and image size caps and the free-space factor (defaults: DEFAULT_STORE_LIMITS). */
  limits?: Partial<StoreLimits>;
  clock?: () => Date;
  /** Told the size of each layer downloaded from a registry, once verified (for metrics). */
  onPulledBytes?: (bytes: number) => void;
}

type Progress = (p: PullProgress) => void;
type FetchBlob = (digest: string, dest: string, expectedSize: number, progress: (bytes: number) => void) => Promise<void>;

/** Every content digest an image record refers to. */
function digestsOf(image: Pick<Image, 'digest' | 'configDigest' | 'indexDigest' | 'layers'>): string[] {
  return [image.digest, image.configDigest, ...(image.indexDigest ? [image.indexDigest] : []), ...image.layers.map((l) => l.digest)];
}

export class ImageService implements ImageProvisioner {
  readonly content: ContentStore;
  readonly limits: StoreLimits;
  private readonly pulls = new Map<string, Promise<Image>>();
  private readonly builds = new Map<string, Promise<string>>();
  private readonly lock = new StoreLock();

  constructor(private readonly options: ImageServiceOptions) {
    this.content = new ContentStore(join(options.dir, 'blobs'));
    this.limits = { ...DEFAULT_STORE_LIMITS, ...options.limits };
  }

  /** Clears what a crash may have left half-written. */
  async init(): Promise<void> {
    await mkdir(join(this.options.dir, 'blocks'), { recursive: true });
    await rm(join(this.options.dir, 'tmp'), { recursive: true, force: true });
    await this.content.removePartials();
  }

  list(): Image[] {
    return this.options.store.list();
  }

  find(reference: string): Image | undefined {
    try {
      return this.options.store.get(this.options.normalize(reference));
    } catch {
      return undefined;
    }
  }

  get(reference: string): Image {
    const image = this.options.store.get(this.options.normalize(reference));
    if (!image) throw new ImageNotFoundError(reference);
    return image;
  }

  blockImagePath(image: Pick<Image, 'digest'>): string {
    return join(this.options.dir, 'blocks', `${digestHex(image.digest)}.ext4`);
  }

  /** Pulls from the registry even when the reference is stored (a tag may have moved). */
  pull(reference: string, options: { platform?: string; onProgress?: Progress } = {}): Promise<Image> {
    return this.usingStore((touched) => this.pullShared(reference, options, touched));
  }

  /** Pulls (if needed) and builds the block image; resolves to the stored image. */
  ensure(reference: string, onProgress?: Progress): Promise<Image> {
    return this.usingStore((touched) => this.ensureShared(reference, touched, onProgress));
  }

  /**
   * Pulls and builds what is missing and creates the VM's writable disks over the image, all under
   * one shared hold of the store lock: no prune runs between the build and the disk creation, nor
   * before `record` has made the VM's use of the image known.
   */
  provision(reference: string, stateDir: string, disk: VmDiskOptions, record: (image: Image, disks: VmDisk[]) => void, onProgress?: Progress): Promise<Image> {
    return this.usingStore(async (touched) => {
      const image = await this.ensureShared(reference, touched, onProgress);
      record(image, await createVmImageDisks(this.blockImagePath(image), stateDir, disk, { scratchTemplates: join(this.options.dir, 'scratch') }));
      return image;
    });
  }

  /**
   * Stores an image whose blobs `fetchBlob` supplies (an import), builds its block image and
   * records it. On failure nothing of it is kept that no other image refers to.
   */
  add(resolved: ImageDescription, onProgress: Progress, fetchBlob: FetchBlob): Promise<Image> {
    return this.usingStore(async (touched) => {
      await this.storeResolved(resolved, onProgress, fetchBlob, touched);
      return this.commit(resolved, onProgress);
    });
  }

  async delete(reference: string, force: boolean): Promise<void> {
    const image = this.get(reference);
    const users = this.options.usersOf(image.digest);
    if (users.length > 0 && !force) throw new ImageInUseError(image.reference, users);
    this.options.store.delete(image.reference);
  }

  /** Disk the store uses: content blobs (their sizes) and block images (their allocated blocks; they are sparse). */
  async diskUsage(): Promise<{ blobs: number; blocks: number }> {
    let blobs = 0;
    for (const digest of await this.content.list()) blobs += (await this.content.size(digest)) ?? 0;
    let blocks = 0;
    const dir = join(this.options.dir, 'blocks');
    for (const name of await readdir(dir).catch(() => [] as string[])) blocks += ((await stat(join(dir, name)).catch(() => undefined))?.blocks ?? 0) * 512;
    return { blobs, blocks };
  }

  /** Removes blobs and block images no image record refers to; with `all`, also images no VM uses. */
  prune(all: boolean): Promise<{ deleted: string[]; reclaimedBytes: number }> {
    return this.lock.runExclusive(async () => {
      const deleted: string[] = [];
      if (all) {
        for (const image of this.list()) {
          if (this.options.usersOf(image.digest).length === 0) {
            this.options.store.delete(image.reference);
            deleted.push(image.reference);
          }
        }
      }
      const { reclaimedBytes, removed } = await this.removeUnreferenced(undefined);
      deleted.push(...removed);
      return { deleted, reclaimedBytes };
    });
  }

  /**
   * Runs an operation that writes or uses store content under a shared hold of the store lock.
   * When it fails, the content it touched that no image refers to is removed, under the exclusive
   * hold, so that no other pull or create is using it at that moment.
   */
  private async usingStore<T>(operation: (touched: Set<string>) => Promise<T>): Promise<T> {
    const touched = new Set<string>();
    try {
      return await this.lock.runShared(() => operation(touched));
    } catch (err) {
      if (touched.size > 0) await this.lock.runExclusive(() => this.removeUnreferenced(touched)).catch((cleanup: unknown) => this.options.logger.warn({ err: String(cleanup) }, 'clean-up after a failed image operation failed'));
      throw err;
    }
  }

  /**
   * Deletes blobs and block images that no image record (nor a VM, for block images) refers to;
   * only those of `among` when given. Exclusive hold only.
   */
  private async removeUnreferenced(among: ReadonlySet<string> | undefined): Promise<{ reclaimedBytes: number; removed: string[] }> {
    const keep = new Set(this.list().flatMap(digestsOf));
    const removed: string[] = [];
    let reclaimedBytes = 0;
    for (const digest of await this.content.list()) {
      if (keep.has(digest) || (among && !among.has(digest))) continue;
      reclaimedBytes += (await this.content.size(digest)) ?? 0;
      await this.content.delete(digest);
      removed.push(digest);
    }
    const blocks = join(this.options.dir, 'blocks');
    for (const name of await readdir(blocks).catch(() => [] as string[])) {
      const digest = `sha256:${name.replace(/\.ext4$/, '')}`;
      // A VM's writable disk is backed by its block image, even after `image rm --force`.
      if ((keep.has(digest) || this.options.usersOf(digest).length > 0) && name.endsWith('.ext4')) continue;
      if (among && !among.has(digest)) continue;
      const path = join(blocks, name);
      reclaimedBytes += ((await stat(path).catch(() => undefined))?.blocks ?? 0) * 512;
      await rm(path, { force: true });
      removed.push(`block image ${name}`);
    }
    return { reclaimedBytes, removed };
  }

  private pullShared(reference: string, options: { platform?: string; onProgress?: Progress }, touched: Set<string>): Promise<Image> {
    const normalized = this.options.normalize(reference);
    const platform = options.platform ?? DEFAULT_PLATFORM;
    const key = `${normalized} ${platform}`;
    const running = this.pulls.get(key);
    if (running) return running;
    const pull = this.runPull(normalized, platform, options.onProgress ?? (() => undefined), touched).finally(() => this.pulls.delete(key));
    this.pulls.set(key, pull);
    return pull;
  }

  private async ensureShared(reference: string, touched: Set<string>, onProgress?: Progress): Promise<Image> {
    const stored = this.options.store.get(this.options.normalize(reference));
    const image = stored ?? (await this.pullShared(reference, onProgress ? { onProgress } : {}, touched));
    await this.ensureBlockImage(image, onProgress);
    return image;
  }

  private async runPull(reference: string, platform: string, onProgress: Progress, touched: Set<string>): Promise<Image> {
    onProgress({ reference, phase: 'resolving' });
    const resolved = await this.options.registry.resolve(reference, platform);
    await this.storeResolved(resolved, onProgress, async (digest, dest, expectedSize, progress) => {
      await this.options.registry.downloadBlob(reference, digest, dest, { expectedSize, onProgress: progress });
      this.options.onPulledBytes?.(expectedSize);
    }, touched);
    const image = await this.commit(resolved, onProgress);
    onProgress({ reference, phase: 'done' });
    return image;
  }

  /** Builds the block image, then records the reference: an image whose layers cannot be unpacked is never listed. */
  private async commit(resolved: ImageDescription, onProgress: Progress): Promise<Image> {
    const image = this.describe(resolved);
    await this.ensureBlockImage(image, onProgress);
    this.options.store.put(image);
    return image;
  }

  /** Stores manifest, config and layers (skipping blobs already present), after checking the size limits. */
  private async storeResolved(resolved: ImageDescription, onProgress: Progress, fetchBlob: FetchBlob, touched: Set<string>): Promise<void> {
    const { reference } = resolved;
    for (const digest of digestsOf(this.describe(resolved))) touched.add(digest);
    checkImageSize(reference, resolved.layers, this.limits);
    let missing = 0;
    for (const layer of resolved.layers) if (!(await this.content.has(layer.digest))) missing += layer.size;
    await mkdir(this.options.dir, { recursive: true });
    await checkFreeSpace(reference, this.options.dir, resolved.layers.reduce((sum, l) => sum + l.size, 0), missing, this.limits);
    if (resolved.indexDigest && resolved.indexBytes) await this.content.put(resolved.indexDigest, resolved.indexBytes);
    await this.content.put(resolved.manifestDigest, resolved.manifestBytes);
    await this.content.put(resolved.configDigest, resolved.configBytes);
    const queue = [...resolved.layers];
    const worker = async () => {
      for (let layer = queue.shift(); layer; layer = queue.shift()) {
        const { digest, size } = layer;
        if (await this.content.has(digest)) {
          onProgress({ reference, phase: 'downloading', layer: digest, current: size, total: size, message: 'already present' });
          continue;
        }
        let current = 0;
        onProgress({ reference, phase: 'downloading', layer: digest, current, total: size });
        const temp = this.content.tempPath(digest);
        try {
          await fetchBlob(digest, temp, size, (bytes) => {
            current = bytes; // the source reports a running total (restarting at 0 on a retry)
            onProgress({ reference, phase: 'downloading', layer: digest, current, total: size });
          });
          await this.content.commit(temp, digest);
        } finally {
          await rm(temp, { force: true });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_LAYER_DOWNLOADS, queue.length) }, worker));
  }

  private describe(resolved: ImageDescription): Image {
    return {
      reference: resolved.reference,
      digest: resolved.manifestDigest,
      configDigest: resolved.configDigest,
      platform: resolved.platform,
      layers: resolved.layers,
      size: resolved.layers.reduce((sum, l) => sum + l.size, 0),
      createdAt: (this.options.clock?.() ?? new Date()).toISOString(),
      config: resolved.config,
      ...(resolved.indexDigest ? { indexDigest: resolved.indexDigest } : {}),
    };
  }

  /** Unpacks the layers and builds the ext4 image, once per digest. Callers hold the store lock shared. */
  private async ensureBlockImage(image: Image, onProgress?: Progress): Promise<string> {
    const path = this.blockImagePath(image);
    if (await stat(path).then(() => true, () => false)) return path;
    const running = this.builds.get(image.digest);
    if (running) return running;
    const build = this.buildBlockImage(image, path, onProgress ?? (() => undefined)).finally(() => this.builds.delete(image.digest));
    this.builds.set(image.digest, build);
    return build;
  }

  private async buildBlockImage(image: Image, path: string, onProgress: Progress): Promise<string> {
    const log = this.options.logger.child({ image: image.reference, digest: image.digest });
    const tmp = join(this.options.dir, 'tmp');
    await mkdir(tmp, { recursive: true });
    const work = await mkdtemp(join(tmp, 'build-'));
    try {
      const rootfs = join(work, 'rootfs');
      await mkdir(rootfs, { mode: 0o755 });
      onProgress({ reference: image.reference, phase: 'unpacking', total: image.layers.length });
      const started = Date.now();
      const stats = await unpackLayers(
        rootfs,
        image.layers.map((layer) => ({ mediaType: layer.mediaType, open: () => this.content.open(layer.digest) })),
        this.options.unpackLimits ? { limits: this.options.unpackLimits } : {},
      );
      onProgress({ reference: image.reference, phase: 'building' });
      const output = join(work, 'image.ext4');
      const built = await buildExt4Image({ sourceDir: rootfs, output, digest: image.digest, label: 'hc-image' });
      await rename(output, path);
      log.info({ entries: stats.entries, bytes: stats.bytes, unpackMs: Date.now() - started - built.durationMs, mkfsMs: built.durationMs }, 'block image built');
      return path;
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }
}
