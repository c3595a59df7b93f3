/**
 * Limits for unpacking untrusted layers, the running totals shared by the layers of one image, and
 * the meter that watches the decompressed byte stream (the gzip-bomb guard).
 */
import { InvalidArgumentError } from '../../core/errors.js';
import { LayerLimitError } from './errors.js';

const GiB = 1024 * 1024 * 1024;
const MiB = 1024 * 1024;

export interface UnpackLimits {
  /** Sum of declared entry sizes (file contents) over all layers sharing a budget. */
  maxTotalBytes: number;
  /** Tar entries (files, dirs, links, whiteouts...) over all layers sharing a budget. */
  maxEntries: number;
  /** Declared size of one entry; defaults to `maxTotalBytes`. */
  maxEntryBytes?: number;
  /**
   * Decompressed:compressed ratio, checked once 16 MiB have been decompressed. Off by default: gzip
   * tops out at ~1032:1, so any lower bound also rejects honest zero-filled files, and bombs are
   * already stopped by the declared-size and tar-overhead checks. Set it to be stricter.
   */
  maxCompressionRatio?: number;
}

/**
 * 8 GiB and 500k entries per image: several times a large distro image (a Debian minbase is ~200 MB
 * and ~7k entries), small enough that a hostile image cannot fill the disk of a typical host.
 */
export const DEFAULT_UNPACK_LIMITS: UnpackLimits = Object.freeze({
  maxTotalBytes: 8 * GiB,
  maxEntries: 500_000,
});

export interface UnpackStats {
  /** Tar entries processed (whiteouts included). */
  entries: number;
  /** Declared entry data, i.e. file contents written. */
  bytes: number;
  /** Whiteout and opaque markers applied. */
  whiteouts: number;
}

/** Running totals across the layers of one image; pass the same budget to each `unpackLayer`. */
export class UnpackBudget implements UnpackStats {
  entries = 0;
  bytes = 0;
  whiteouts = 0;

  snapshot(): UnpackStats {
    return { entries: this.entries, bytes: this.bytes, whiteouts: this.whiteouts };
  }
}

/** Defaults overlaid with the caller's partial limits; rejects nonsense early rather than mid-layer. */
export function resolveLimits(partial: Partial<UnpackLimits> = {}): UnpackLimits {
  const merged: UnpackLimits = { ...DEFAULT_UNPACK_LIMITS };
  for (const [key, value] of Object.entries(partial) as [keyof UnpackLimits, number | undefined][]) {
    if (value === undefined) continue;
    if (!(value > 0)) throw new InvalidArgumentError(`unpack limit ${key} must be a positive number, got ${value}`);
    merged[key] = value;
  }
  return merged;
}

/** Grace before the overhead and ratio checks kick in: covers stream buffering and one big PAX header (tar-stream caps those at 4 MiB). */
export const METER_GRACE_BYTES = 16 * MiB;
/** Header + padding + PAX records of one entry is ~1–3 KiB; 16 KiB leaves room for long names and xattrs. */
export const OVERHEAD_PER_ENTRY = 16 * 1024;

/**
 * Watches one layer's byte streams. Declared sizes are checked at each header before anything is
 * written, but bytes that belong to no entry (zero blocks, endless PAX headers) never reach a header
 * check: bounding `decompressed - declared` by a per-entry allowance stops those early.
 */
export class LayerMeter {
  compressed = 0;
  decompressed = 0;
  declared = 0;
  entries = 0;
  /** Name of the last entry seen, for error messages. */
  lastEntry: string | undefined;

  constructor(private readonly limits: UnpackLimits) {}

  onCompressed(n: number): void {
    this.compressed += n;
  }

  /** Throws (which aborts the stream) as soon as the decompressed stream breaks a rule. */
  onDecompressed(n: number): void {
    this.decompressed += n;
    const overhead = this.decompressed - this.declared;
    const allowed = METER_GRACE_BYTES + this.entries * OVERHEAD_PER_ENTRY;
    if (overhead > allowed) {
      throw new LayerLimitError(
        'tar-overhead',
        this.lastEntry,
        `${this.decompressed} decompressed bytes carry only ${this.declared} bytes of entry data (${this.entries} entries); the stream is padding or a decompression bomb`,
      );
    }
    const ratio = this.limits.maxCompressionRatio;
    if (ratio !== undefined && this.decompressed > METER_GRACE_BYTES && this.decompressed > ratio * this.compressed) {
      throw new LayerLimitError(
        'compression-ratio',
        this.lastEntry,
        `decompressed ${this.decompressed} bytes from ${this.compressed} compressed bytes, above the ${ratio}:1 limit`,
      );
    }
  }
}
