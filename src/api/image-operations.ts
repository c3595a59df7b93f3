/** Image operations, written once for both transports (like operations.ts for VMs). */
import { InvalidArgumentError, PermissionDeniedError } from '../core/errors.js';
import type { Image, PullProgress } from '../core/image.js';
import type { ImageService } from '../images/image-service.js';
import type { ImageImporter } from '../images/import/index.js';
import { admitHostPath, anyHostPath, type HostPathPolicy } from './auth/host-paths.js';

const PLATFORM_PATTERN = /^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/;

function requireString(value: unknown, field: string, hint: string): string {
  if (typeof value !== 'string' || value.trim() === '') throw new InvalidArgumentError(`${field} is required (${hint})`, [{ path: field, message: 'required' }]);
  return value.trim();
}

export type ProgressMessage = PullProgress & { image?: Image };

export class ImageOperations {
  constructor(
    private readonly images: ImageService,
    private readonly importer: ImageImporter,
    /** Archives the callers may import (default: any file, as on the unix socket). */
    private readonly hostPaths: HostPathPolicy = anyHostPath,
  ) {}

  /** The same operations for callers restricted to `hostPaths` (the remote listener's). */
  withHostPaths(hostPaths: HostPathPolicy): ImageOperations {
    return new ImageOperations(this.images, this.importer, hostPaths);
  }

  async pullImage(req: { reference?: string; platform?: string }, onProgress: (p: ProgressMessage) => void): Promise<Image> {
    const reference = requireString(req.reference, 'reference', 'e.g. alpine or 127.0.0.1:5000/team/app:v1');
    if (req.platform !== undefined && !PLATFORM_PATTERN.test(req.platform)) {
      throw new InvalidArgumentError(`platform = ${JSON.stringify(req.platform)}: expected os/arch[/variant], e.g. linux/amd64`, [{ path: 'platform', message: 'os/arch[/variant]', value: req.platform }]);
    }
    const image = await this.images.pull(reference, { ...(req.platform ? { platform: req.platform } : {}), onProgress });
    onProgress({ reference: image.reference, phase: 'done', image });
    return image;
  }

  async importImage(req: { path?: string; reference?: string }, onProgress: (p: ProgressMessage) => void): Promise<Image> {
    const requested = requireString(req.path, 'path', "a tar file on the daemon's host");
    const admission = admitHostPath(this.hostPaths, requested, 'file');
    if ('denied' in admission) throw new PermissionDeniedError(`path = ${JSON.stringify(requested)}: ${admission.denied}`, [{ path: 'path', message: admission.denied, value: requested }]);
    const path = admission.path;
    const image = await this.importer.importTar(path, { ...(req.reference ? { reference: req.reference } : {}), onProgress });
    onProgress({ reference: image.reference, phase: 'done', image });
    return image;
  }

  listImages(): { images: Image[] } {
    return { images: this.images.list() };
  }

  getImage(req: { reference?: string }): Image {
    return this.images.get(requireString(req.reference, 'reference', 'an image reference'));
  }

  async deleteImage(req: { reference?: string; force?: boolean }): Promise<Record<string, never>> {
    await this.images.delete(requireString(req.reference, 'reference', 'an image reference'), req.force === true);
    return {};
  }

  pruneImages(req: { all?: boolean }): Promise<{ deleted: string[]; reclaimedBytes: number }> {
    return this.images.prune(req.all === true);
  }
}
