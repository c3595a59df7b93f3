/**
 * Unpacking OCI image layers onto a directory without mounts, as root, with containerd's semantics
 * and refusal of hostile layers. Decisions worth knowing:
 *
 * - Absolute entry names are rooted at the root directory (`/etc/x` → `etc/x`), as Docker does;
 *   a `..` that climbs above the root is refused (UnsafeLayerError, rule `path-escape`).
 * - Every parent is resolved inside the root with securejoin semantics (`resolveInRoot`): symlinks
 *   from any layer are followed, but `/` and `..` stop at the root, so writes cannot leave it. The
 *   final component is never followed: an existing entry is replaced, never written through.
 * - Hardlinks: archive-relative target, parent resolved inside the root, must exist and must not be
 *   a directory (files, symlinks, and also device nodes/fifos, which GNU tar may hardlink).
 * - Whiteouts remove only what lower layers left; entries of the same layer survive whatever the
 *   tar order. Ownership is numeric; setuid/setgid/sticky are kept; directory times are set last.
 * - Not applied: extended attributes (SCHILY.xattr.*, e.g. file capabilities): Node has no setxattr.
 * - Limits (`DEFAULT_UNPACK_LIMITS`) are checked on declared sizes before writing, plus a meter on
 *   the decompressed stream that stops bombs made of padding. zstd is refused (Node 20 has none).
 * - A failed unpack leaves the root part-written (never anything outside it): unpack into a
 *   scratch directory and discard it on error.
 */
export {
  CorruptLayerError,
  IMAGE_CORRUPT_LAYER_CODE,
  LayerLimitError,
  LayerUnpackError,
  UnsafeLayerError,
  UnsupportedLayerError,
  type UnpackRule,
} from './errors.js';
export { compressionOf, type LayerInput } from './decompress.js';
export { DEFAULT_UNPACK_LIMITS, UnpackBudget, resolveLimits, type UnpackLimits, type UnpackStats } from './limits.js';
export { MAX_SYMLINK_FOLLOWS, entryComponents, resolveInRoot } from './paths.js';
export { unpackLayer, unpackLayers, type LayerSource, type UnpackOptions } from './unpack.js';
