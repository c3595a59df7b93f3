/**
 * Images end to end: pull (or import) into the content store, record the reference, and build the
 * read-only ext4 block image once per manifest digest; per-VM copy-on-write disks on top of it.
 * Concurrent pulls of one reference, and concurrent builds of one digest, share a single run.
 */
import { mkdir, mkdtemp, rename, rm, stat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ImageInUseError, ImageNotFoundError } from '../core/errors.js';
import type { Image, PullProgress, VmDisk } from '../core/image.js';
import type { ImageProvisioner, ImageStore, Logger } from '../core/ports.js';
import { buildExt4Image } from './block-image.js';
import { ContentStore, digestHex } from './content-store.js';
import type { ImageSource, ImageDescription } from './image-source.js';
import { createVmImageDisks } from './vm-disks.js';
import { unpackLayers, type UnpackLimits } from './unpack/index.js';

export const DEFAULT_PLATFORM = 'linux/amd64';
const PARALLEL_LAYER_DOWNLOADS = 3;

export interface ImageServiceOptions {
  /** `<root>/images`: blobs/, blocks/, tmp/. */
  dir: string;
  store: ImageStore;
  registry: ImageSource;
  /** Normalises user input (`alpine` → `docker.io/library/alpine:latest`). */
  normalize: (reference: string) => string;
  /** Names of VMs using an image digest, so in-use images are not deleted. */
  usersOf: (digest: string) => string[];
  logger: Logger;
  unpackLimits?: Partial<UnpackLimits>;
  clock?: () => Date;
}

type Progress = (p: PullProgress) => void;

export class ImageService implements ImageProvisioner {
  readonly content: ContentStore;
  private readonly pulls = new Map<string, Promise<Image>>();
  private readonly builds = new Map<string, Promise<string>>();

  constructor(private readonly options: ImageServiceOptions) {
    this.content = new ContentStore(join(options.dir, 'blobs'));
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
    const normalized = this.options.normalize(reference);
    const platform = options.platform ?? DEFAULT_PLATFORM;
    const key = `${normalized} ${platform}`;
    const running = this.pulls.get(key);
    if (running) return running;
    const pull = this.runPull(normalized, platform, options.onProgress ?? (() => undefined)).finally(() => this.pulls.delete(key));
    this.pulls.set(key, pull);
    return pull;
  }

  async ensure(reference: string, onProgress?: Progress): Promise<Image> {
    const stored = this.options.store.get(this.options.normalize(reference));
    const image = stored ?? (await this.pull(reference, onProgress ? { onProgress } : {}));
    await this.ensureBlockImage(image, onProgress);
    return image;
  }

  createVmDisk(image: Image, stateDir: string, formats: readonly ('raw' | 'qcow2')[]): Promise<VmDisk[]> {
    return createVmImageDisks(this.blockImagePath(image), stateDir, formats);
  }

  async delete(reference: string, force: boolean): Promise<void> {
    const image = this.get(reference);
    const users = this.options.usersOf(image.digest);
    if (users.length > 0 && !force) throw new ImageInUseError(image.reference, users);
    this.options.store.delete(image.reference);
  }

  /** Removes blobs and block images no image record refers to; with `all`, also images no VM uses. */
  async prune(all: boolean): Promise<{ deleted: string[]; reclaimedBytes: number }> {
    const deleted: string[] = [];
    if (all) {
      for (const image of this.list()) {
        if (this.options.usersOf(image.digest).length === 0) {
          this.options.store.delete(image.reference);
          deleted.push(image.reference);
        }
      }
    }
    const keep = new Set<string>();
    for (const image of this.list()) {
      for (const d of [image.digest, image.configDigest, image.indexDigest, ...image.layers.map((l) => l.digest)]) if (d) keep.add(d);
    }
    let reclaimedBytes = 0;
    for (const digest of await this.content.list()) {
      if (keep.has(digest)) continue;
      reclaimedBytes += (await this.content.size(digest)) ?? 0;
      await this.content.delete(digest);
      deleted.push(digest);
    }
    const blocks = join(this.options.dir, 'blocks');
    for (const name of await readdir(blocks).catch(() => [] as string[])) {
      const digest = `sha256:${name.replace(/\.ext4$/, '')}`;
      // A VM's copy-on-write disk is backed by its block image, even after `image rm --force`.
      if ((keep.has(digest) || this.options.usersOf(digest).length > 0) && name.endsWith('.ext4')) continue;
      const path = join(blocks, name);
      reclaimedBytes += ((await stat(path).catch(() => undefined))?.blocks ?? 0) * 512;
      await rm(path, { force: true });
      deleted.push(`block image ${name}`);
    }
    return { deleted, reclaimedBytes };
  }

  private async runPull(reference: string, platform: string, onProgress: Progress): Promise<Image> {
    onProgress({ reference, phase: 'resolving' });
    const resolved = await this.options.registry.resolve(reference, platform);
    await this.storeResolved(resolved, onProgress, (digest, dest, expectedSize, progress) =>
      this.options.registry.downloadBlob(reference, digest, dest, { expectedSize, onProgress: progress }),
    );
    const image = await this.commit(resolved, onProgress);
    onProgress({ reference, phase: 'done' });
    return image;
  }

  /**
   * Builds the block image, then records the reference: an image whose layers cannot be unpacked
   * (hostile, unsupported) is never listed, and its blobs are dropped unless another image shares them.
   */
  async commit(resolved: ImageDescription, onProgress: Progress): Promise<Image> {
    const image = this.describe(resolved);
    try {
      await this.ensureBlockImage(image, onProgress);
    } catch (err) {
      const shared = new Set(this.list().flatMap((i) => [i.digest, i.configDigest, i.indexDigest, ...i.layers.map((l) => l.digest)]));
      for (const digest of [image.digest, image.configDigest, image.indexDigest, ...image.layers.map((l) => l.digest)]) {
        if (digest && !shared.has(digest)) await this.content.delete(digest);
      }
      throw err;
    }
    this.options.store.put(image);
    return image;
  }

  /** Stores manifest, config and layers (skipping blobs already present). */
  async storeResolved(
    resolved: ImageDescription,
    onProgress: Progress,
    fetchBlob: (digest: string, dest: string, expectedSize: number, progress: (bytes: number) => void) => Promise<void>,
  ): Promise<void> {
    const { reference } = resolved;
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

  /** Unpacks the layers and builds the ext4 image, once per digest. */
  async ensureBlockImage(image: Image, onProgress?: Progress): Promise<string> {
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
