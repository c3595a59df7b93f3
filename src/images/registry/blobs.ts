/**
 * Blob downloads. Every byte is hashed as it arrives and checked against the digest the blob is
 * addressed by; a file on disk appears only after the check passed (temp file + fsync + rename).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { HypercoreError } from '../../core/errors.js';
import { assertDigest, hasherFor } from './digest.js';
import { BlobTooLargeError, DigestMismatchError, RegistryNotFoundError, RegistryUnavailableError, TransferInterruptedError } from './errors.js';
import { backoffDelay, describeNetworkError, errorDetail, isAbort, type RetryPolicy } from './http.js';
import { formatReference, type ImageReference } from './reference.js';
import type { RegistryTransport } from './transport.js';

/** A blob's bytes as they arrive; iterating to the end verifies size and digest (or throws). */
export interface BlobStream extends AsyncIterable<Uint8Array> {
  /** Size announced by the registry (Content-Length), if any. */
  readonly size: number | undefined;
}

/** Options of `fetchBlob`. */
export interface FetchBlobOptions {
  /** Called with the total number of bytes received so far (cumulative, not a delta). */
  onProgress?: (bytes: number) => void;
  signal?: AbortSignal;
  /** Size from the descriptor; more or fewer bytes is an error. */
  expectedSize?: number;
  /**
   * Most bytes accepted, whatever the descriptor or the registry declare (unset: no cap beyond
   * `expectedSize`). A larger declared size is refused before the transfer; a body that runs on is
   * cut off at the first byte over.
   */
  maxBytes?: number;
}

/** Result of a completed download. */
export interface DownloadedBlob {
  digest: string;
  size: number;
  path: string;
}

function shortDigest(digest: string): string {
  return digest.slice(0, digest.indexOf(':') + 13);
}

/** Opens `GET /v2/<repo>/blobs/<digest>` (following redirects) and returns a verifying stream. */
export async function fetchBlob(transport: RegistryTransport, ref: ImageReference, digest: string, options: FetchBlobOptions = {}): Promise<BlobStream> {
  assertDigest(digest);
  const where = `${ref.registry}/${ref.repository}`;
  const cap = options.maxBytes;
  const tooLarge = (detail: string): BlobTooLargeError => new BlobTooLargeError(`blob ${digest} in ${where} is larger than the ${cap} bytes allowed: ${detail}`);
  if (cap !== undefined && options.expectedSize !== undefined && options.expectedSize > cap) throw tooLarge(`its descriptor declares ${options.expectedSize} bytes`);
  const response = await transport.send({ registry: ref.registry, repository: ref.repository, actions: 'pull' }, `/v2/${ref.repository}/blobs/${digest}`, {
    what: `GET blob ${shortDigest(digest)} of ${ref.repository}`,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  if (response.status === 404) throw new RegistryNotFoundError(`blob ${digest} not found in ${where}: ${await errorDetail(response)}`);
  if (response.status !== 200 || !response.body) {
    throw new RegistryUnavailableError(`GET blob ${digest} from ${where}: HTTP ${response.status} ${await errorDetail(response)}`, { status: response.status });
  }
  const header = response.headers.get('content-length');
  const announced = header === null ? undefined : Number(header);
  if (options.expectedSize !== undefined && announced !== undefined && announced !== options.expectedSize) {
    await response.body.cancel().catch(() => undefined);
    throw new DigestMismatchError(`blob ${digest} in ${where} has the wrong size`, `${options.expectedSize} bytes`, `${announced} bytes`);
  }
  if (cap !== undefined && announced !== undefined && announced > cap) {
    await response.body.cancel().catch(() => undefined);
    throw tooLarge(`the registry announces ${announced} bytes`);
  }
  const limit = options.expectedSize ?? announced;
  const body = response.body as unknown as AsyncIterable<Uint8Array>;
  async function* verified(): AsyncGenerator<Uint8Array> {
    const hash = hasherFor(digest);
    let received = 0;
    try {
      for await (const chunk of body) {
        received += chunk.byteLength;
        // Stop at the first byte too many: a registry sending an endless stream must not fill the disk.
        if (limit !== undefined && received > limit) throw new DigestMismatchError(`blob ${digest} in ${where} is longer than expected`, `${limit} bytes`, `more than ${limit}`);
        if (cap !== undefined && received > cap) throw tooLarge(`the registry sent more`);
        hash.update(chunk);
        options.onProgress?.(received);
        yield chunk;
      }
    } catch (err) {
      if (err instanceof HypercoreError || isAbort(err, options.signal)) throw err;
      throw new TransferInterruptedError(`download of ${digest} from ${where} broke off after ${received} bytes: ${describeNetworkError(err)}`, { cause: err });
    }
    if (limit !== undefined && received < limit) throw new TransferInterruptedError(`download of ${digest} from ${where} was cut short: got ${received} of ${limit} bytes`);
    const actual = `${digest.slice(0, digest.indexOf(':'))}:${hash.digest('hex')}`;
    if (actual !== digest) throw new DigestMismatchError(`blob from ${where} does not match its digest`, digest, actual);
  }
  const stream = verified();
  return { size: announced, [Symbol.asyncIterator]: () => stream };
}

/** Reads a small blob (a config) into memory, verified, refusing more than `limit` bytes. */
export async function readBlob(transport: RegistryTransport, ref: ImageReference, digest: string, options: { expectedSize?: number; limit: number; signal?: AbortSignal }): Promise<Buffer> {
  const tooLarge = (): RegistryUnavailableError => new RegistryUnavailableError(`blob ${digest} of ${formatReference(ref)} is larger than the ${options.limit} bytes allowed`);
  if ((options.expectedSize ?? 0) > options.limit) throw tooLarge();
  const { limit: _limit, ...fetchOptions } = options;
  const stream = await fetchBlob(transport, ref, digest, fetchOptions);
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of stream) {
    total += chunk.byteLength;
    // Leaving the loop cancels the download, so an oversized body is never read in full.
    if (total > options.limit) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

/** Options of `downloadBlob`. */
export interface DownloadBlobOptions extends FetchBlobOptions {
  /** Retry policy for broken-off transfers (the transport retries failed requests itself). */
  retry?: RetryPolicy;
}

/** fsyncs a directory so a rename in it survives a crash; best effort (some filesystems refuse). */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r').catch(() => undefined);
  if (!handle) return;
  await handle.sync().catch(() => undefined);
  await handle.close();
}

/**
 * Downloads a blob to `destPath`: writes a temp file next to it, verifies size and digest while
 * writing, fsyncs and renames. On any failure the temp file is removed and nothing is kept; a
 * transfer that broke off is retried from the start, a digest mismatch is not (it would recur).
 */
export async function downloadBlob(transport: RegistryTransport, ref: ImageReference, digest: string, destPath: string, options: DownloadBlobOptions = {}): Promise<DownloadedBlob> {
  assertDigest(digest);
  const dir = dirname(destPath);
  await mkdir(dir, { recursive: true });
  for (let attempt = 0; ; attempt++) {
    const tmp = join(dir, `.${basename(destPath)}.${randomBytes(6).toString('hex')}.partial`);
    try {
      let size = 0;
      const stream = await fetchBlob(transport, ref, digest, {
        ...options,
        onProgress: (bytes) => {
          size = bytes;
          options.onProgress?.(bytes);
        },
      });
      // The file is opened before the transfer (not lazily by a write stream): a transfer that fails
      // at once must not leave a file that appears after the clean-up below ran.
      const output = await open(tmp, 'wx', 0o644);
      await pipeline(stream, output.createWriteStream()); // the stream closes the handle, also on failure
      // Data must be on disk before the rename makes the file visible under its final name.
      const handle = await open(tmp, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, destPath);
      await syncDirectory(dir);
      return { digest, size, path: destPath };
    } catch (err) {
      await rm(tmp, { force: true });
      const retries = options.retry?.retries ?? 0;
      if (!(err instanceof TransferInterruptedError) || attempt >= retries || options.signal?.aborted) throw err;
      await delay(backoffDelay(attempt, options.retry as RetryPolicy), undefined, options.signal ? { signal: options.signal } : undefined);
    }
  }
}
