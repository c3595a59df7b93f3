/**
 * Test helper: builds small but real images in memory (gzip tar layers made with tar-stream, a
 * config with matching diff_ids, an OCI or Docker schema 2 manifest, and indexes) and pushes them.
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import type { RegistryClient } from '../client.js';
import { MediaTypes } from '../media-types.js';
import type { ImageReference } from '../reference.js';

/** Content and its digest. */
export interface Blob {
  digest: string;
  bytes: Buffer;
  mediaType: string;
}

/** A built single-platform image. */
export interface TestImage {
  config: Blob;
  layers: Blob[];
  manifest: Blob;
  platform: { os: string; architecture: string; variant?: string };
}

/** The sha256 digest of bytes. */
export function digestOf(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function blob(bytes: Buffer, mediaType: string): Blob {
  return { digest: digestOf(bytes), bytes, mediaType };
}

/** An uncompressed tar with the given files (fixed mtime, so the same input gives the same bytes). */
export async function makeTar(files: Record<string, string | Buffer>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, content] of Object.entries(files)) pack.entry({ name, mode: 0o644, mtime: new Date(0) }, content);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Incompressible but deterministic bytes, so layers span many network chunks. */
export function noise(size: number, seed: string): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; parts.length * 32 < size; i++) parts.push(createHash('sha256').update(`${seed}:${i}`).digest());
  return Buffer.concat(parts).subarray(0, size);
}

/** Builds an image of two gzip layers for `architecture`, in OCI or Docker schema 2 format. */
export async function buildImage(options: { architecture: string; variant?: string; format?: 'oci' | 'docker'; tag?: string }): Promise<TestImage> {
  const docker = options.format === 'docker';
  const tars = [await makeTar({ 'etc/hello': `hello ${options.architecture}\n`, 'bin/tool': noise(300_000, options.architecture) }), await makeTar({ 'etc/marker': `${options.tag ?? 'v1'} ${options.architecture}\n` })];
  const layers = tars.map((t) => blob(gzipSync(t), docker ? MediaTypes.dockerLayerGzip : MediaTypes.ociLayerGzip));
  const platform = { os: 'linux', architecture: options.architecture, ...(options.variant ? { variant: options.variant } : {}) };
  const configJson = {
    ...platform,
    created: '2024-01-01T00:00:00Z',
    config: { Env: ['PATH=/usr/bin:/bin'], Cmd: ['/bin/sh'], WorkingDir: '/' },
    rootfs: { type: 'layers', diff_ids: tars.map(digestOf) },
    history: [{ created_by: 'test layer 1' }, { created_by: 'test layer 2' }],
  };
  const config = blob(Buffer.from(JSON.stringify(configJson)), docker ? MediaTypes.dockerConfig : MediaTypes.ociConfig);
  const manifestType = docker ? MediaTypes.dockerManifest : MediaTypes.ociManifest;
  const descriptor = (b: Blob) => ({ mediaType: b.mediaType, digest: b.digest, size: b.bytes.length });
  const manifest = blob(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: manifestType, config: descriptor(config), layers: layers.map(descriptor) })), manifestType);
  return { config, layers, manifest, platform };
}

/** An OCI index (or Docker manifest list) over the images. */
export function buildIndex(images: TestImage[], format: 'oci' | 'docker' = 'oci'): Blob {
  const mediaType = format === 'docker' ? MediaTypes.dockerManifestList : MediaTypes.ociIndex;
  const manifests = images.map((i) => ({ mediaType: i.manifest.mediaType, digest: i.manifest.digest, size: i.manifest.bytes.length, platform: i.platform }));
  return blob(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, manifests })), mediaType);
}

/** Pushes an image's blobs and manifest (by digest) to `ref`'s repository; tags it when `ref` has a tag. */
export async function pushImage(client: RegistryClient, ref: ImageReference, image: TestImage): Promise<void> {
  for (const b of [image.config, ...image.layers]) await client.pushBlob(ref, b.digest, b.bytes);
  const { tag: _tag, ...untagged } = ref;
  await client.pushManifest({ ...untagged, digest: image.manifest.digest }, image.manifest.mediaType, image.manifest.bytes);
  if (ref.tag !== undefined) await client.pushManifest({ registry: ref.registry, repository: ref.repository, tag: ref.tag }, image.manifest.mediaType, image.manifest.bytes);
}
