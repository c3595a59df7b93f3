/**
 * Errors of the layer unpacker. Each names the offending tar entry (when there is one) and the rule
 * it broke, so a refused image explains itself ("entry ../x: path-escape") without a debugger.
 */
import { ErrorCodes, HypercoreError, type ErrorCode } from '../../core/errors.js';

/** A layer whose gzip or tar framing is broken (truncated download, garbage, a hardlink to nothing). */
export const IMAGE_CORRUPT_LAYER_CODE: ErrorCode = ErrorCodes.imageCorruptLayer;

/** The rule an entry broke; stable strings, meant for logs and tests. */
export type UnpackRule =
  | 'path-escape'
  | 'invalid-name'
  | 'symlink-loop'
  | 'hardlink-escape'
  | 'hardlink-target-missing'
  | 'hardlink-target-directory'
  | 'whiteout-name'
  | 'parent-not-directory'
  | 'root-not-directory'
  | 'max-entries'
  | 'max-entry-bytes'
  | 'max-total-bytes'
  | 'tar-overhead'
  | 'compression-ratio'
  | 'unsupported-compression'
  | 'unsupported-media-type'
  | 'unsupported-entry-type'
  | 'corrupt-gzip'
  | 'corrupt-tar';

/** Base of every unpack error: `entryPath` is the tar name as written in the layer (undefined for stream-level errors). */
export class LayerUnpackError extends HypercoreError {
  readonly entryPath: string | undefined;
  readonly rule: UnpackRule;

  constructor(code: ErrorCode, rule: UnpackRule, entryPath: string | undefined, message: string, cause?: unknown) {
    const where = entryPath === undefined ? 'layer' : `layer entry ${JSON.stringify(entryPath)}`;
    super(code, `${where}: ${message} [${rule}]`, {
      cause,
      details: [{ path: entryPath ?? '', message: rule }],
    });
    this.entryPath = entryPath;
    this.rule = rule;
  }
}

/** Hostile input: a path, link or whiteout that would reach outside the root directory. */
export class UnsafeLayerError extends LayerUnpackError {
  constructor(rule: UnpackRule, entryPath: string | undefined, message: string) {
    super(ErrorCodes.imageUnsafeLayer, rule, entryPath, message);
  }
}

/** A size, count or ratio limit was exceeded; unpacking stopped before the excess was written. */
export class LayerLimitError extends LayerUnpackError {
  constructor(rule: UnpackRule, entryPath: string | undefined, message: string) {
    super(ErrorCodes.imageLimitExceeded, rule, entryPath, message);
  }
}

/** Something valid but not handled here (zstd, an unknown media type, a GNU sparse entry). */
export class UnsupportedLayerError extends LayerUnpackError {
  constructor(rule: UnpackRule, entryPath: string | undefined, message: string) {
    super(ErrorCodes.imageUnsupported, rule, entryPath, message);
  }
}

/** Broken framing: truncated or invalid gzip/tar, a parent that is a file, a hardlink to nothing. */
export class CorruptLayerError extends LayerUnpackError {
  constructor(rule: UnpackRule, entryPath: string | undefined, message: string, cause?: unknown) {
    super(IMAGE_CORRUPT_LAYER_CODE, rule, entryPath, message, cause);
  }
}
