/**
 * `unpackLayer`: one OCI layer onto a root directory, streamed end to end (blob → gunzip → meter →
 * tar parser → one entry at a time), so memory stays flat whatever the layer size.
 *
 * On failure the root is left part-written (never anything outside it): callers unpack into a
 * scratch directory and discard it on error.
 */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Readable } from 'node:stream';
import tar, { type Extract } from 'tar-stream';
import { HypercoreError, InternalError, InvalidArgumentError } from '../../core/errors.js';
import { compressionOf, openTarStream, type LayerInput } from './decompress.js';
import { CorruptLayerError } from './errors.js';
import { LayerMeter, UnpackBudget, resolveLimits, type UnpackLimits, type UnpackStats } from './limits.js';
import { LayerWriter, type TarHeader } from './writer.js';

export interface UnpackOptions {
  /** The layer descriptor's media type: …tar, …tar+gzip, Docker …tar.gzip. */
  mediaType: string;
  /** Overrides of DEFAULT_UNPACK_LIMITS. */
  limits?: Partial<UnpackLimits>;
  /** Running totals across the layers of one image; limits apply to these totals. */
  budget?: UnpackBudget;
}

/** One layer as `unpackLayers` takes it: opened only when its turn comes. */
export interface LayerSource {
  mediaType: string;
  open(): LayerInput | Promise<LayerInput>;
}

/** Writes the tar bytes into the parser with backpressure; stops quietly if the parser goes away. */
async function feed(source: Readable, extract: Extract, onError: (err: unknown) => void): Promise<void> {
  try {
    for await (const chunk of source) {
      if (extract.destroyed) return;
      if (!extract.write(chunk as Buffer)) {
        await new Promise<void>((done) => {
          const finish = (): void => {
            extract.off('drain', finish);
            extract.off('close', finish);
            done();
          };
          extract.on('drain', finish);
          extract.on('close', finish);
        });
      }
    }
    if (!extract.destroyed) extract.end(null);
  } catch (err) {
    onError(err);
    extract.destroy(err as Error);
  }
}

/** Resolves once the parser has finished destroying itself (its 'error' event, if any, has fired). */
function closed(extract: Extract): Promise<void> {
  return extract.destroyed ? Promise.resolve() : new Promise((done) => extract.once('close', () => done()));
}

/**
 * The error to report. Our own typed errors win; a plain error from an entry write is usually a
 * symptom of the stream breaking (zlib or tar-stream destroyed the entry), so those come next.
 */
function explain(err: unknown, streamError: unknown, tarError: unknown, entry: string | undefined): HypercoreError {
  if (err instanceof HypercoreError) return err;
  const cause = streamError ?? tarError ?? err;
  if (cause instanceof HypercoreError) return cause;
  const message = cause instanceof Error ? cause.message : String(cause);
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  if (cause === streamError && typeof code === 'string' && code.startsWith('Z_')) {
    return new CorruptLayerError('corrupt-gzip', entry, `gzip stream is corrupt or truncated: ${message}`, cause);
  }
  if (cause === tarError) return new CorruptLayerError('corrupt-tar', entry, `tar stream is corrupt or truncated: ${message}`, cause);
  const what = cause === streamError ? 'reading the layer' : `unpacking entry ${JSON.stringify(entry ?? '')}`;
  return new InternalError(`${what} failed: ${message}`, cause);
}

/** Releases a layer stream we will not read (a refused media type). */
function release(input: LayerInput): void {
  const maybe = input as { destroy?: () => void };
  if (typeof maybe.destroy === 'function') maybe.destroy();
}

/**
 * Applies one layer (a tar stream, plain or gzip) to `rootDir` with OCI semantics: entries are
 * created or replace what lower layers left (directories merge), whiteouts and opaque markers remove
 * lower content, ownership is numeric and modes keep setuid/setgid/sticky. Hostile input is refused
 * with a typed error naming the entry and the rule: names climbing out of the root, symlinks (from
 * any layer) leading out, hardlinks or whiteouts outside, limits exceeded, decompression bombs.
 *
 * Not applied: extended attributes (SCHILY.xattr.*; Node has no setxattr). Absolute names are
 * rooted at `rootDir` (`/etc/x` → `etc/x`). Returns this layer's stats; `options.budget` collects
 * totals across layers.
 */
export async function unpackLayer(rootDir: string, layer: LayerInput, options: UnpackOptions): Promise<UnpackStats> {
  const root = resolve(rootDir);
  let limits: UnpackLimits;
  try {
    limits = resolveLimits(options.limits);
    compressionOf(options.mediaType); // refuses zstd / non-tar media types before reading a byte
    const rootStat = await stat(root).catch(() => null);
    if (!rootStat?.isDirectory()) throw new InvalidArgumentError(`unpack root ${root} is not an existing directory`);
  } catch (err) {
    release(layer);
    throw err;
  }

  const budget = options.budget ?? new UnpackBudget();
  const meter = new LayerMeter(limits);
  const writer = new LayerWriter(root, limits, budget, meter);
  const tarBytes = await openTarStream(layer, meter).catch((err: unknown) => {
    throw explain(err, err, undefined, undefined);
  });
  const extract = tar.extract();
  let streamError: unknown;
  let tarError: unknown;
  extract.on('error', (err: unknown) => {
    if (err !== streamError) tarError ??= err;
  });
  const feeding = feed(tarBytes, extract, (err) => {
    streamError ??= err;
  });
  try {
    for await (const entry of extract) await writer.apply(entry.header as TarHeader, entry as AsyncIterable<Buffer>);
    await feeding;
    await writer.finish();
    return { ...writer.stats };
  } catch (err) {
    // Stop the parser and let its 'error' event land, then read the causes before tearing down the
    // source (whose own "premature close" is a consequence, not a cause).
    extract.destroy();
    await closed(extract);
    const reported = explain(err, streamError, tarError, meter.lastEntry);
    tarBytes.destroy();
    await feeding;
    throw reported;
  } finally {
    tarBytes.destroy();
    extract.destroy();
    await feeding;
  }
}

/**
 * Applies `layers` in order (base first) onto `rootDir`, opening each only when its turn comes and
 * sharing one budget, so the limits bound the whole image. Returns the totals of these layers.
 */
export async function unpackLayers(
  rootDir: string,
  layers: readonly LayerSource[],
  options: { limits?: Partial<UnpackLimits>; budget?: UnpackBudget } = {},
): Promise<UnpackStats> {
  // Refuse an image with an unreadable layer (zstd...) before writing anything.
  for (const layer of layers) compressionOf(layer.mediaType);
  const budget = options.budget ?? new UnpackBudget();
  const before = budget.snapshot();
  for (const layer of layers) {
    const input = await layer.open();
    await unpackLayer(rootDir, input, { mediaType: layer.mediaType, limits: options.limits, budget });
  }
  const after = budget.snapshot();
  return { entries: after.entries - before.entries, bytes: after.bytes - before.bytes, whiteouts: after.whiteouts - before.whiteouts };
}
