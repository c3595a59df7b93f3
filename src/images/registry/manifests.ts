/**
 * Manifest resolution: reference → (index →) platform manifest → config, with every document's
 * digest verified, so what is returned is exactly what the reference (or registry) pinned.
 */
import { InvalidArgumentError, type ValidationIssue } from '../../core/errors.js';
import { readBlob } from './blobs.js';
import { digestLike, sha256Digest, verifyBytes } from './digest.js';
import { DigestMismatchError, ImageUnsupportedError, RegistryNotFoundError, RegistryUnavailableError } from './errors.js';
import { errorDetail, readLimited } from './http.js';
import * as mt from './media-types.js';
import { formatReference, type ImageReference } from './reference.js';
import type { RegistryTransport } from './transport.js';

/** The platform to pick from a multi-platform image. */
export interface PlatformSpec {
  os: string;
  architecture: string;
  variant?: string;
}

/** A fetched and validated manifest or index. */
export type FetchedManifest = { digest: string; mediaType: string; bytes: Buffer } & ({ kind: 'index'; index: mt.ImageIndex } | { kind: 'manifest'; manifest: mt.ImageManifest });

/** Largest manifest or index read into memory (containerd's limit too; real ones are a few KiB). */
export const manifestLimit = 4 * 1024 * 1024;
/** Largest image config read into memory. */
export const configLimit = 8 * 1024 * 1024;

const archAliases: Record<string, string> = { x86_64: 'amd64', 'x86-64': 'amd64', aarch64: 'arm64', i386: '386', i686: '386', armhf: 'arm', armel: 'arm' };

/** Normalises like containerd: `aarch64` → `arm64`, `arm64/v8` → `arm64`, `arm` → `arm/v7`. */
export function normalisePlatform(p: PlatformSpec): PlatformSpec {
  const os = p.os.toLowerCase();
  const raw = p.architecture.toLowerCase();
  const architecture = archAliases[raw] ?? raw;
  let variant = p.variant?.toLowerCase() || undefined;
  if (raw === 'armel') variant = 'v6';
  if (architecture === 'arm' && variant === undefined) variant = 'v7';
  if (architecture === 'arm64' && (variant === 'v8' || variant === '8')) variant = undefined;
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

/** Parses `os/arch[/variant]` (`linux/arm64`, `linux/arm/v7`); throws InvalidArgumentError otherwise. */
export function parsePlatform(text: string): PlatformSpec {
  const parts = text.trim().split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-zA-Z0-9_.-]+$/.test(p))) {
    throw new InvalidArgumentError(`invalid platform "${text}": expected os/architecture[/variant], e.g. linux/amd64 or linux/arm64/v8`);
  }
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  return normalisePlatform(variant === undefined ? { os, architecture } : { os, architecture, variant });
}

/** `linux/arm64/v8` style text. */
export function formatPlatform(p: { os: string; architecture: string; variant?: string | undefined }): string {
  return [p.os, p.architecture, p.variant].filter((x) => x !== undefined && x !== '').join('/');
}

function matches(candidate: PlatformSpec, wanted: PlatformSpec): boolean {
  const c = normalisePlatform(candidate);
  const w = normalisePlatform(wanted);
  return c.os === w.os && c.architecture === w.architecture && (wanted.variant === undefined && w.architecture !== 'arm' ? true : c.variant === w.variant);
}

/** Picks the entry for `wanted` from an index; throws RegistryNotFoundError listing what is available. */
export function selectPlatform(index: mt.ImageIndex, wanted: PlatformSpec, name: string): mt.Descriptor {
  const found = index.manifests.find((d) => d.platform !== undefined && matches(d.platform, wanted));
  if (found) return found;
  // Attestation manifests (buildx) carry unknown/unknown; they are not images anyone can pick.
  const available = index.manifests.map((d) => (d.platform ? formatPlatform(d.platform) : 'unspecified')).filter((p) => p !== 'unknown/unknown');
  const details: ValidationIssue[] = available.map((p) => ({ path: 'platform', message: 'available', value: p }));
  throw new RegistryNotFoundError(`${name} has no image for ${formatPlatform(wanted)}; available: ${available.join(', ') || 'none'}`, details);
}

function parseJson(bytes: Uint8Array, what: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(Buffer.from(bytes).toString('utf8'));
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new ImageUnsupportedError(`${what} is not a JSON object`);
}

function issues(error: { issues: ReadonlyArray<{ path: PropertyKey[]; message: string }> }): ValidationIssue[] {
  return error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message }));
}

/** Decides index vs manifest from the body's mediaType, else Content-Type, else the document's shape. */
function classify(json: Record<string, unknown>, contentType: string, what: string): { kind: 'index' | 'manifest'; mediaType: string } {
  const declared = typeof json.mediaType === 'string' ? json.mediaType : undefined;
  const type = declared ?? contentType;
  if (json.schemaVersion === 1 || type === mt.MediaTypes.dockerSchema1 || type === mt.MediaTypes.dockerSchema1Signed) {
    throw new ImageUnsupportedError(`${what} uses Docker image manifest schema 1, which is deprecated and not supported; re-push it with a current tool`);
  }
  if (mt.isIndexMediaType(type)) return { kind: 'index', mediaType: type };
  if (mt.isManifestMediaType(type)) return { kind: 'manifest', mediaType: type };
  if (declared === undefined && Array.isArray(json.manifests)) return { kind: 'index', mediaType: mt.MediaTypes.ociIndex };
  if (declared === undefined && Array.isArray(json.layers)) return { kind: 'manifest', mediaType: mt.MediaTypes.ociManifest };
  throw new ImageUnsupportedError(`${what} has media type "${type}", which is not an image manifest or index`);
}

/**
 * GETs `/v2/<repo>/manifests/<tag|digest>` and verifies it: against the digest asked for, or
 * else against `Docker-Content-Digest` (the registry's own claim) when it sends one.
 */
export async function fetchManifest(transport: RegistryTransport, ref: ImageReference, tagOrDigest: string, signal?: AbortSignal): Promise<FetchedManifest> {
  const name = `${ref.registry}/${ref.repository}${tagOrDigest.includes(':') ? '@' : ':'}${tagOrDigest}`;
  const response = await transport.send({ registry: ref.registry, repository: ref.repository, actions: 'pull' }, `/v2/${ref.repository}/manifests/${tagOrDigest}`, {
    what: `GET manifest ${name}`,
    headers: { accept: mt.manifestAcceptTypes.join(', ') },
    ...(signal ? { signal } : {}),
  });
  if (response.status === 404) throw new RegistryNotFoundError(`image ${name} not found: ${await errorDetail(response)}`);
  if (response.status !== 200) throw new RegistryUnavailableError(`GET manifest ${name}: HTTP ${response.status} ${await errorDetail(response)}`, { status: response.status });
  const bytes = await readLimited(response, manifestLimit, `manifest ${name}`);
  const headerDigest = response.headers.get('docker-content-digest') ?? undefined;
  let digest: string;
  if (tagOrDigest.includes(':')) {
    verifyBytes(`manifest ${name}`, tagOrDigest, bytes);
    digest = tagOrDigest;
  } else {
    digest = headerDigest ?? sha256Digest(bytes);
    if (headerDigest !== undefined) {
      const actual = digestLike(headerDigest, bytes);
      if (actual !== headerDigest) throw new DigestMismatchError(`manifest ${name} does not match the registry's Docker-Content-Digest`, headerDigest, actual);
    }
  }
  const json = parseJson(bytes, `manifest ${name}`);
  const contentType = (response.headers.get('content-type') ?? '').split(';')[0]?.trim() ?? '';
  const { kind, mediaType } = classify(json, contentType, `manifest ${name}`);
  if (kind === 'index') {
    const parsed = mt.imageIndexSchema.safeParse(json);
    if (!parsed.success) throw new ImageUnsupportedError(`index ${name} is invalid`, issues(parsed.error));
    return { kind, digest, mediaType, bytes, index: parsed.data };
  }
  const parsed = mt.imageManifestSchema.safeParse(json);
  if (!parsed.success) throw new ImageUnsupportedError(`manifest ${name} is invalid`, issues(parsed.error));
  return { kind, digest, mediaType, bytes, manifest: parsed.data };
}

/** A resolved image: its platform manifest and config, all verified. */
export interface ResolvedImage {
  /** The normalised reference that was resolved. */
  reference: ImageReference;
  manifestDigest: string;
  manifestMediaType: string;
  manifest: mt.ImageManifest;
  manifestBytes: Buffer;
  /** Set when the reference named an index / manifest list. */
  indexDigest?: string;
  /** The index / manifest list bytes, when there was one. */
  indexBytes?: Buffer;
  platform: PlatformSpec;
  config: mt.ImageConfig;
  configDigest: string;
  configBytes: Buffer;
}

/** Refuses manifests that are not container images of layer types this client can unpack. */
export function checkManifestContent(manifest: mt.ImageManifest, name: string): void {
  if (!mt.isConfigMediaType(manifest.config.mediaType)) {
    throw new ImageUnsupportedError(`${name} is not a container image: its config has media type "${manifest.config.mediaType}"`);
  }
  const unknown = manifest.layers.filter((l) => mt.layerCompression(l.mediaType) === undefined).map((l) => l.mediaType);
  if (unknown.length > 0) throw new ImageUnsupportedError(`${name} has layers of unsupported media types: ${[...new Set(unknown)].join(', ')}`);
}

/**
 * Parses and checks an image config against its manifest and the wanted platform: a valid config,
 * for that platform, listing one diff id per layer. Pulls and imports both go through here.
 */
export function checkImageConfig(configBytes: Uint8Array, manifest: mt.ImageManifest, platform: PlatformSpec, name: string): { config: mt.ImageConfig; platform: PlatformSpec } {
  const parsed = mt.imageConfigSchema.safeParse(parseJson(configBytes, `config of ${name}`));
  if (!parsed.success) throw new ImageUnsupportedError(`the config of ${name} is invalid`, issues(parsed.error));
  const config = parsed.data;
  const actual: PlatformSpec = config.variant ? { os: config.os, architecture: config.architecture, variant: config.variant } : { os: config.os, architecture: config.architecture };
  // Catches single-platform images for another architecture, which a VM could not boot.
  const [have, want] = [normalisePlatform(actual), normalisePlatform(platform)];
  if (have.os !== want.os || have.architecture !== want.architecture || (platform.variant !== undefined && have.variant !== want.variant)) {
    throw new RegistryNotFoundError(`${name} is an image for ${formatPlatform(have)}, not ${formatPlatform(platform)}`);
  }
  if (config.rootfs.diff_ids.length !== manifest.layers.length) {
    throw new ImageUnsupportedError(`${name}: the config lists ${config.rootfs.diff_ids.length} layer diff ids but the manifest has ${manifest.layers.length} layers`);
  }
  return { config, platform: have };
}

/** Resolves `ref` for `platform` (see RegistryClient.resolve). */
export async function resolveImage(transport: RegistryTransport, ref: ImageReference, platform: PlatformSpec, signal?: AbortSignal): Promise<ResolvedImage> {
  const name = formatReference(ref);
  let fetched = await fetchManifest(transport, ref, ref.digest ?? ref.tag ?? 'latest', signal);
  let index: { digest: string; bytes: Buffer } | undefined;
  if (fetched.kind === 'index') {
    index = { digest: fetched.digest, bytes: fetched.bytes };
    const entry = selectPlatform(fetched.index, platform, name);
    fetched = await fetchManifest(transport, ref, entry.digest, signal);
    if (fetched.bytes.byteLength !== entry.size) throw new DigestMismatchError(`manifest ${entry.digest} of ${name} has the wrong size`, `${entry.size} bytes`, `${fetched.bytes.byteLength} bytes`);
    if (fetched.kind !== 'manifest') throw new ImageUnsupportedError(`${name}: the ${formatPlatform(platform)} entry is itself an index; nested indexes are not supported`);
  }
  const manifest = fetched.manifest;
  checkManifestContent(manifest, name);
  const configBytes = await readBlob(transport, ref, manifest.config.digest, { expectedSize: manifest.config.size, limit: configLimit, ...(signal ? { signal } : {}) });
  const { config, platform: have } = checkImageConfig(configBytes, manifest, platform, name);
  const result: ResolvedImage = { reference: ref, manifestDigest: fetched.digest, manifestMediaType: fetched.mediaType, manifest, manifestBytes: fetched.bytes, platform: have, config, configDigest: manifest.config.digest, configBytes };
  if (index !== undefined) {
    result.indexDigest = index.digest;
    result.indexBytes = index.bytes;
  }
  return result;
}
