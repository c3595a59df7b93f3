/**
 * Size limits of the image store, checked before anything is downloaded: the sizes a manifest
 * declares are a registry's (or an archive's) claim, so a hostile one could otherwise make the
 * daemon fetch and unpack until the host's disk is full.
 */
import { statfs } from 'node:fs/promises';
import { ErrorCodes, HypercoreError } from '../core/errors.js';
import type { ImageLayer } from '../core/image.js';
import { DEFAULT_UNPACK_LIMITS } from './unpack/limits.js';

export interface StoreLimits {
  /** Largest single layer blob (bytes, as declared by the manifest and enforced while downloading). */
  maxBlobBytes: number;
  /** Largest image: the sum of its layer blobs (bytes). */
  maxImageBytes: number;
  /**
   * Free space a pull needs, as a multiple of the image's size: the blobs still missing once, plus
   * (factor - 1) × the image's size for the unpacked tree and the block image built from it.
   */
  freeSpaceFactor: number;
}

/**
 * 8 GiB for one layer and for a whole image: what the unpacker accepts in total anyway (a layer
 * rarely unpacks to less than its compressed size), well above real distro and toolchain images.
 */
export const DEFAULT_STORE_LIMITS: StoreLimits = Object.freeze({
  maxBlobBytes: DEFAULT_UNPACK_LIMITS.maxTotalBytes,
  maxImageBytes: DEFAULT_UNPACK_LIMITS.maxTotalBytes,
  freeSpaceFactor: 3,
});

/** An image larger than the store accepts, or a disk too full to take it. */
export class ImageLimitError extends HypercoreError {
  constructor(message: string) {
    super(ErrorCodes.imageLimitExceeded, message);
  }
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

/** Refuses layers and images over the size limits (declared sizes, before any download). */
export function checkImageSize(reference: string, layers: readonly ImageLayer[], limits: StoreLimits): void {
  for (const layer of layers) {
    if (layer.size > limits.maxBlobBytes) {
      throw new ImageLimitError(`${reference}: layer ${layer.digest} declares ${layer.size} bytes, more than the ${limits.maxBlobBytes} allowed for one blob`);
    }
  }
  const total = layers.reduce((sum, l) => sum + l.size, 0);
  if (total > limits.maxImageBytes) throw new ImageLimitError(`${reference}: its layers declare ${total} bytes in all, more than the ${limits.maxImageBytes} allowed for an image`);
}

/** Refuses a pull that would not fit in the free space of `dir`'s filesystem. */
export async function checkFreeSpace(reference: string, dir: string, totalBytes: number, missingBytes: number, limits: StoreLimits): Promise<void> {
  const needed = missingBytes + Math.max(0, limits.freeSpaceFactor - 1) * totalBytes;
  const fs = await statfs(dir);
  const free = fs.bavail * fs.bsize;
  if (needed > free) {
    throw new ImageLimitError(`${reference} needs about ${mib(needed)} of free space in ${dir} (layers, unpacked tree and block image) but only ${mib(free)} is free`);
  }
}
