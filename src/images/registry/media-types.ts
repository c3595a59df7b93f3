/**
 * Media types of OCI and Docker schema 2 images, and zod schemas for manifests, indexes and
 * configs. Schemas are loose (unknown fields kept) because registries and builders add fields;
 * only what the client relies on is checked.
 */
import * as z from 'zod';
import { validateDigest } from './reference.js';

/** All media types the client knows, by role. */
export const MediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociLayerNondistributable: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  ociLayerNondistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  ociLayerNondistributableZstd: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  /** Docker's deprecated schema 1; recognised only to reject it with a clear message. */
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

/** The Accept list for manifest requests: single-platform and multi-platform types of both families. */
export const manifestAcceptTypes: readonly string[] = [MediaTypes.ociIndex, MediaTypes.ociManifest, MediaTypes.dockerManifestList, MediaTypes.dockerManifest];

/** True for an OCI index or a Docker manifest list. */
export function isIndexMediaType(mediaType: string): boolean {
  return mediaType === MediaTypes.ociIndex || mediaType === MediaTypes.dockerManifestList;
}

/** True for a single-platform OCI or Docker schema 2 manifest. */
export function isManifestMediaType(mediaType: string): boolean {
  return mediaType === MediaTypes.ociManifest || mediaType === MediaTypes.dockerManifest;
}

/** True for an OCI or Docker image config. */
export function isConfigMediaType(mediaType: string): boolean {
  return mediaType === MediaTypes.ociConfig || mediaType === MediaTypes.dockerConfig;
}

/** How a layer's tar stream is compressed. */
export type LayerCompression = 'gzip' | 'zstd' | 'none';

const layerCompressions: Record<string, LayerCompression> = {
  [MediaTypes.ociLayer]: 'none',
  [MediaTypes.ociLayerGzip]: 'gzip',
  [MediaTypes.ociLayerZstd]: 'zstd',
  [MediaTypes.ociLayerNondistributable]: 'none',
  [MediaTypes.ociLayerNondistributableGzip]: 'gzip',
  [MediaTypes.ociLayerNondistributableZstd]: 'zstd',
  [MediaTypes.dockerLayer]: 'none',
  [MediaTypes.dockerLayerGzip]: 'gzip',
  [MediaTypes.dockerForeignLayerGzip]: 'gzip',
};

/** Compression of a layer media type, or undefined when it is not a layer type this client knows. */
export function layerCompression(mediaType: string): LayerCompression | undefined {
  return layerCompressions[mediaType];
}

/**
 * Foreign / non-distributable layers (Windows base layers, mostly) are normally served from
 * `urls` outside the registry; we never fetch from hosts the user did not name, so callers reject them.
 */
export function isForeignLayer(mediaType: string): boolean {
  return mediaType === MediaTypes.dockerForeignLayerGzip || mediaType.startsWith('application/vnd.oci.image.layer.nondistributable.');
}

const digest = z.string().refine((d) => validateDigest(d) === undefined, { error: 'must be a digest like sha256:<64 hex digits>' });

/** OS/architecture of an index entry or config. */
export const platformSchema = z.looseObject({
  os: z.string(),
  architecture: z.string(),
  variant: z.string().optional(),
  'os.version': z.string().optional(),
  'os.features': z.array(z.string()).optional(),
});
export type Platform = z.infer<typeof platformSchema>;

/** A content descriptor: what a manifest points at. */
export const descriptorSchema = z.looseObject({
  mediaType: z.string(),
  digest,
  size: z.int().min(0),
  urls: z.array(z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  platform: platformSchema.optional(),
});
export type Descriptor = z.infer<typeof descriptorSchema>;

/** A single-platform image manifest (OCI or Docker schema 2 share this shape). */
export const imageManifestSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type ImageManifest = z.infer<typeof imageManifestSchema>;

/** An OCI index or Docker manifest list. */
export const imageIndexSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  manifests: z.array(descriptorSchema),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type ImageIndex = z.infer<typeof imageIndexSchema>;

/** The runtime part of an image config (entrypoint, cmd, env, ...). */
export const runConfigSchema = z.looseObject({
  User: z.string().optional(),
  Env: z.array(z.string()).nullish(),
  Entrypoint: z.array(z.string()).nullish(),
  Cmd: z.array(z.string()).nullish(),
  WorkingDir: z.string().optional(),
  ExposedPorts: z.record(z.string(), z.unknown()).nullish(),
  Volumes: z.record(z.string(), z.unknown()).nullish(),
  Labels: z.record(z.string(), z.string()).nullish(),
  StopSignal: z.string().optional(),
});

/** An image config (OCI image-spec config.md; Docker's is a superset). */
export const imageConfigSchema = z.looseObject({
  architecture: z.string(),
  os: z.string(),
  variant: z.string().optional(),
  created: z.string().optional(),
  config: runConfigSchema.optional(),
  rootfs: z.looseObject({ type: z.literal('layers'), diff_ids: z.array(digest) }),
  history: z.array(z.looseObject({})).optional(),
});
export type ImageConfig = z.infer<typeof imageConfigSchema>;
