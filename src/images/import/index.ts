/**
 * `hypercore image import`: loads a `docker save` tar or an OCI image-layout tar into the store,
 * with the same digest checks as a pull, then builds the block image.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCodes, HypercoreError } from '../../core/errors.js';
import type { Image, ImageLayer, PullProgress } from '../../core/image.js';
import { sha256Digest, digestHex } from '../content-store.js';
import type { ImageService } from '../image-service.js';
import { runConfigOf, type ImageDescription } from '../image-source.js';
import { imageIndexSchema, imageManifestSchema, isIndexMediaType, MediaTypes, type Descriptor } from '../registry/media-types.js';
import { extractImageArchive } from './extract-archive.js';
import { formatPlatform, parsePlatform, selectPlatform } from '../registry/manifests.js';

export interface ImportOptions {
  reference?: string;
  platform?: string;
  onProgress?: (p: PullProgress) => void;
}

function unsupported(message: string): HypercoreError {
  return new HypercoreError(ErrorCodes.imageUnsupported, message);
}

async function fileDigest(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

async function isGzip(path: string): Promise<boolean> {
  for await (const chunk of createReadStream(path, { start: 0, end: 1 })) return (chunk as Buffer)[0] === 0x1f && (chunk as Buffer)[1] === 0x8b;
  return false;
}

interface DockerSaveEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

export class ImageImporter {
  constructor(
    private readonly images: ImageService,
    private readonly normalize: (reference: string) => string,
    private readonly scratchDir: string,
  ) {}

  async importTar(archive: string, options: ImportOptions = {}): Promise<Image> {
    await stat(archive).catch(() => {
      throw new HypercoreError(ErrorCodes.invalidArgument, `image archive ${archive} not found on the daemon's host`);
    });
    await mkdir(this.scratchDir, { recursive: true });
    const work = await mkdtemp(join(this.scratchDir, 'import-'));
    const onProgress = options.onProgress ?? (() => undefined);
    try {
      onProgress({ reference: options.reference ?? archive, phase: 'unpacking', message: 'reading archive' });
      const files = await extractImageArchive(archive, work);
      const resolved = files.has('index.json') ? await this.fromOciLayout(work, options) : files.has('manifest.json') ? await this.fromDockerSave(work, options) : undefined;
      if (!resolved) throw unsupported(`${archive} is neither an OCI image layout (index.json) nor a docker save archive (manifest.json)`);
      await this.images.storeResolved(resolved, onProgress, async (digest, dest, expectedSize) => {
        const source = join(work, 'blobs', 'sha256', digestHex(digest));
        await copyFile(source, dest);
        const actual = await fileDigest(dest);
        const size = (await stat(dest)).size;
        if (actual !== digest || size !== expectedSize) {
          throw new HypercoreError(ErrorCodes.imageDigestMismatch, `layer ${digest} in ${archive} does not match its digest or size (got ${actual}, ${size} bytes)`);
        }
      });
      return await this.images.commit(resolved, onProgress);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  private async readBlob(work: string, digest: string): Promise<Buffer> {
    const bytes = await readFile(join(work, 'blobs', 'sha256', digestHex(digest))).catch(() => {
      throw unsupported(`the archive lacks blob ${digest}`);
    });
    if (sha256Digest(bytes) !== digest) throw new HypercoreError(ErrorCodes.imageDigestMismatch, `blob ${digest} in the archive does not match its digest`);
    return bytes;
  }

  private async fromOciLayout(work: string, options: ImportOptions): Promise<ImageDescription> {
    const index = imageIndexSchema.parse(JSON.parse(await readFile(join(work, 'index.json'), 'utf8')));
    const platform = parsePlatform(options.platform ?? 'linux/amd64');
    let entry: Descriptor | undefined = index.manifests[0];
    if (!entry) throw unsupported('the OCI layout index lists no image');
    const names = entry.annotations ?? {};
    const name = names['io.containerd.image.name'] ?? names['org.opencontainers.image.ref.name'];
    let indexDigest: string | undefined;
    let indexBytes: Buffer | undefined;
    if (isIndexMediaType(entry.mediaType)) {
      indexDigest = entry.digest;
      indexBytes = await this.readBlob(work, entry.digest);
      const nested = imageIndexSchema.parse(JSON.parse(indexBytes.toString('utf8')));
      entry = selectPlatform(nested, platform, 'the archive');
    }
    const reference = this.referenceFor(options.reference ?? (name && name.includes(':') ? name : undefined));
    return this.resolvedFrom(work, reference, entry.digest, await this.readBlob(work, entry.digest), indexDigest, indexBytes, formatPlatform(platform));
  }

  private async resolvedFrom(work: string, reference: string, manifestDigest: string, manifestBytes: Buffer, indexDigest: string | undefined, indexBytes: Buffer | undefined, platform: string): Promise<ImageDescription> {
    const manifest = imageManifestSchema.parse(JSON.parse(manifestBytes.toString('utf8')));
    const configBytes = await this.readBlob(work, manifest.config.digest);
    return {
      reference,
      manifestDigest,
      manifestBytes,
      ...(indexDigest && indexBytes ? { indexDigest, indexBytes } : {}),
      configDigest: manifest.config.digest,
      configBytes,
      layers: manifest.layers.map((l): ImageLayer => ({ digest: l.digest, mediaType: l.mediaType, size: l.size })),
      platform,
      config: runConfigOf(configBytes),
    };
  }

  /** Docker's legacy format has no manifest blob: one is made (OCI media types) from the config and layer files. */
  private async fromDockerSave(work: string, options: ImportOptions): Promise<ImageDescription> {
    const entries = JSON.parse(await readFile(join(work, 'manifest.json'), 'utf8')) as DockerSaveEntry[];
    const entry = entries[0];
    if (!entry || typeof entry.Config !== 'string' || !Array.isArray(entry.Layers)) throw unsupported('manifest.json of the docker save archive names no image');
    const blobs = join(work, 'blobs', 'sha256');
    await mkdir(blobs, { recursive: true });
    const adopt = async (file: string) => {
      const digest = await fileDigest(join(work, file));
      const target = join(blobs, digestHex(digest));
      if (!(await stat(target).then(() => true, () => false))) await copyFile(join(work, file), target);
      return { digest, size: (await stat(target)).size, gzip: await isGzip(target) };
    };
    const config = await adopt(entry.Config);
    const layers = [];
    for (const file of entry.Layers) {
      const l = await adopt(file);
      layers.push({ mediaType: l.gzip ? MediaTypes.ociLayerGzip : MediaTypes.ociLayer, digest: l.digest, size: l.size });
    }
    const manifestBytes = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: { mediaType: MediaTypes.ociConfig, digest: config.digest, size: config.size }, layers }),
    );
    const reference = this.referenceFor(options.reference ?? entry.RepoTags?.[0]);
    return this.resolvedFrom(work, reference, sha256Digest(manifestBytes), manifestBytes, undefined, undefined, options.platform ?? 'linux/amd64');
  }

  private referenceFor(name: string | undefined): string {
    if (!name) throw new HypercoreError(ErrorCodes.invalidArgument, 'the archive names no image; give one with --reference NAME[:TAG]');
    return this.normalize(name);
  }
}
