/**
 * `hypercore image import`: loads a `docker save` tar or an OCI image-layout tar into the store,
 * with the same digest and config checks as a pull, then builds the block image. Every file the
 * archive's documents name is looked up among the files extracted from the archive itself.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCodes, HypercoreError } from '../../core/errors.js';
import type { Image, ImageLayer, PullProgress } from '../../core/image.js';
import { sha256Digest, digestHex } from '../content-store.js';
import type { ImageService } from '../image-service.js';
import { runConfigOf, type ImageDescription } from '../image-source.js';
import { imageIndexSchema, imageManifestSchema, isIndexMediaType, MediaTypes, type Descriptor } from '../registry/media-types.js';
import { extractImageArchive, type ExtractedArchive } from './extract-archive.js';
import { checkImageConfig, checkManifestContent, configLimit, formatPlatform, manifestLimit, parsePlatform, selectPlatform, type PlatformSpec } from '../registry/manifests.js';

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

function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    throw unsupported(`${what} of the archive is not valid JSON`);
  }
}

/** An image found in an archive: its description and where each of its blobs lies in the archive. */
interface ArchiveImage {
  description: ImageDescription;
  blobPath(digest: string): Promise<string>;
}

interface DockerSaveEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

function isDockerSaveEntry(value: unknown): value is DockerSaveEntry {
  const e = value as Partial<DockerSaveEntry> | null | undefined;
  return typeof e === 'object' && e !== null && typeof e.Config === 'string' && Array.isArray(e.Layers) && e.Layers.every((l) => typeof l === 'string');
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
      const found = files.has('index.json') ? await this.fromOciLayout(files, options) : files.has('manifest.json') ? await this.fromDockerSave(files, options) : undefined;
      if (!found) throw unsupported(`${archive} is neither an OCI image layout (index.json) nor a docker save archive (manifest.json)`);
      return await this.images.add(found.description, onProgress, async (digest, dest, expectedSize) => {
        await copyFile(await found.blobPath(digest), dest);
        const actual = await fileDigest(dest);
        const size = (await stat(dest)).size;
        if (actual !== digest || size !== expectedSize) {
          throw new HypercoreError(ErrorCodes.imageDigestMismatch, `layer ${digest} in ${archive} does not match its digest or size (got ${actual}, ${size} bytes)`);
        }
      });
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  private ociBlob(files: ExtractedArchive, digest: string): Promise<string> {
    return files.file(`blobs/sha256/${digestHex(digest)}`, `the OCI layout's reference to blob ${digest}`);
  }

  private async readOciBlob(files: ExtractedArchive, digest: string, limit: number): Promise<Buffer> {
    const bytes = await files.read(`blobs/sha256/${digestHex(digest)}`, `the OCI layout's reference to blob ${digest}`, limit);
    if (sha256Digest(bytes) !== digest) throw new HypercoreError(ErrorCodes.imageDigestMismatch, `blob ${digest} in the archive does not match its digest`);
    return bytes;
  }

  private async fromOciLayout(files: ExtractedArchive, options: ImportOptions): Promise<ArchiveImage> {
    const parsed = imageIndexSchema.safeParse(parseJson(await files.read('index.json', 'the OCI layout', manifestLimit), 'index.json'));
    if (!parsed.success) throw unsupported(`index.json of the archive is not an OCI image index: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    const platform = parsePlatform(options.platform ?? 'linux/amd64');
    let entry: Descriptor | undefined = parsed.data.manifests[0];
    if (!entry) throw unsupported('the OCI layout index lists no image');
    const names = entry.annotations ?? {};
    const name = names['io.containerd.image.name'] ?? names['org.opencontainers.image.ref.name'];
    let index: { digest: string; bytes: Buffer } | undefined;
    if (isIndexMediaType(entry.mediaType)) {
      const bytes = await this.readOciBlob(files, entry.digest, manifestLimit);
      index = { digest: entry.digest, bytes };
      const nested = imageIndexSchema.safeParse(parseJson(bytes, `index ${entry.digest}`));
      if (!nested.success) throw unsupported(`index ${entry.digest} of the archive is not an OCI image index`);
      entry = selectPlatform(nested.data, platform, 'the archive');
    }
    const reference = this.referenceFor(options.reference ?? (name && name.includes(':') ? name : undefined));
    const manifestBytes = await this.readOciBlob(files, entry.digest, manifestLimit);
    const configBytes = (manifest: { config: Descriptor }) => this.readOciBlob(files, manifest.config.digest, configLimit);
    const description = await this.describe(reference, entry.digest, manifestBytes, configBytes, platform, index);
    return { description, blobPath: (digest) => this.ociBlob(files, digest) };
  }

  /** Docker's legacy format has no manifest blob: one is made (OCI media types) from the config and layer files. */
  private async fromDockerSave(files: ExtractedArchive, options: ImportOptions): Promise<ArchiveImage> {
    const entries = parseJson(await files.read('manifest.json', 'the docker save archive', manifestLimit), 'manifest.json');
    const entry: unknown = Array.isArray(entries) ? entries[0] : undefined;
    if (!isDockerSaveEntry(entry)) throw unsupported('manifest.json of the docker save archive names no image (Config and Layers)');
    const paths = new Map<string, string>();
    const adopt = async (name: string, what: string) => {
      const path = await files.file(name, what);
      const digest = await fileDigest(path);
      paths.set(digest, path);
      return { digest, size: (await stat(path)).size, gzip: await isGzip(path) };
    };
    const config = await adopt(entry.Config, "manifest.json's Config");
    const layers = [];
    for (const file of entry.Layers) {
      const l = await adopt(file, "manifest.json's Layers");
      layers.push({ mediaType: l.gzip ? MediaTypes.ociLayerGzip : MediaTypes.ociLayer, digest: l.digest, size: l.size });
    }
    const manifestBytes = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: { mediaType: MediaTypes.ociConfig, digest: config.digest, size: config.size }, layers }),
    );
    const reference = this.referenceFor(options.reference ?? entry.RepoTags?.[0]);
    const platform = parsePlatform(options.platform ?? 'linux/amd64');
    const configBytes = () => files.read(entry.Config, "manifest.json's Config", configLimit);
    const description = await this.describe(reference, sha256Digest(manifestBytes), manifestBytes, configBytes, platform);
    return {
      description,
      blobPath: async (digest) => {
        const path = paths.get(digest);
        if (!path) throw unsupported(`the archive lacks blob ${digest}`);
        return path;
      },
    };
  }

  /** Validates manifest and config exactly as a pull does and describes the image. */
  private async describe(
    reference: string,
    manifestDigest: string,
    manifestBytes: Buffer,
    readConfig: (manifest: { config: Descriptor }) => Promise<Buffer>,
    wanted: PlatformSpec,
    index?: { digest: string; bytes: Buffer },
  ): Promise<ImageDescription> {
    const parsed = imageManifestSchema.safeParse(parseJson(manifestBytes, `manifest ${manifestDigest}`));
    if (!parsed.success) throw unsupported(`manifest ${manifestDigest} of the archive is not an image manifest: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    const manifest = parsed.data;
    checkManifestContent(manifest, reference);
    const configBytes = await readConfig(manifest);
    if (sha256Digest(configBytes) !== manifest.config.digest || configBytes.byteLength !== manifest.config.size) {
      throw new HypercoreError(ErrorCodes.imageDigestMismatch, `the config of ${reference} in the archive does not match its digest or size`);
    }
    const { platform } = checkImageConfig(configBytes, manifest, wanted, reference);
    return {
      reference,
      manifestDigest,
      manifestBytes,
      ...(index ? { indexDigest: index.digest, indexBytes: index.bytes } : {}),
      configDigest: manifest.config.digest,
      configBytes,
      layers: manifest.layers.map((l): ImageLayer => ({ digest: l.digest, mediaType: l.mediaType, size: l.size })),
      platform: formatPlatform(platform),
      config: runConfigOf(configBytes),
    };
  }

  private referenceFor(name: string | undefined): string {
    if (!name) throw new HypercoreError(ErrorCodes.invalidArgument, 'the archive names no image; give one with --reference NAME[:TAG]');
    return this.normalize(name);
  }
}
