/** The registry as an ImageSource for the image service: resolves references and fetches blobs. */
import type { ImageLayer } from '../core/image.js';
import type { ImageDescription, ImageSource } from './image-source.js';
import { runConfigOf } from './image-source.js';
import { RegistryClient } from './registry/client.js';
import { CredentialStore } from './registry/credentials.js';
import { formatPlatform, parsePlatform } from './registry/manifests.js';
import { formatReference, parseReference } from './registry/reference.js';

/** `alpine` → `docker.io/library/alpine:latest`, the form images are stored under. */
export function normalizeReference(text: string): string {
  return formatReference(parseReference(text));
}

export class RegistryImageSource implements ImageSource {
  constructor(private readonly client: RegistryClient) {}

  async resolve(reference: string, platform: string): Promise<ImageDescription> {
    const r = await this.client.resolve(reference, { platform: parsePlatform(platform) });
    return {
      reference: formatReference(r.reference),
      manifestDigest: r.manifestDigest,
      manifestBytes: r.manifestBytes,
      ...(r.indexDigest && r.indexBytes ? { indexDigest: r.indexDigest, indexBytes: r.indexBytes } : {}),
      configDigest: r.configDigest,
      configBytes: r.configBytes,
      layers: r.manifest.layers.map((l): ImageLayer => ({ digest: l.digest, mediaType: l.mediaType, size: l.size })),
      platform: formatPlatform(r.platform),
      config: runConfigOf(r.configBytes),
    };
  }

  async downloadBlob(reference: string, digest: string, destPath: string, options: { expectedSize: number; onProgress?: (bytes: number) => void }): Promise<void> {
    await this.client.downloadBlob(reference, digest, destPath, options);
  }
}

/** The daemon's registry source: Docker's credential file, plain HTTP only where allowed, blobs capped at `maxBlobBytes`. */
export function createRegistrySource(options: { insecureRegistries: string[]; maxBlobBytes?: number }): RegistryImageSource {
  const { insecureRegistries, maxBlobBytes } = options;
  return new RegistryImageSource(new RegistryClient({ credentials: new CredentialStore(), insecureRegistries, ...(maxBlobBytes !== undefined ? { maxBlobBytes } : {}) }));
}
