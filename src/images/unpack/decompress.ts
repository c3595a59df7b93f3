/**
 * From a layer blob to a metered stream of tar bytes. The media type only decides whether we can
 * read the layer at all; the compression itself is sniffed from the first bytes, as containerd does,
 * because some registries label gzip layers as plain tar and the reverse.
 */
import { Readable, Transform, pipeline, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { UnsupportedLayerError } from './errors.js';
import type { LayerMeter } from './limits.js';

/** A layer blob: a Node stream or any async iterable of byte chunks. */
export type LayerInput = NodeJS.ReadableStream | AsyncIterable<Buffer>;

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

function zstdError(): UnsupportedLayerError {
  return new UnsupportedLayerError('unsupported-compression', undefined, 'unsupported compression: zstd (Node 20 has no zstd decoder)');
}

/**
 * The compression a media type announces: `…tar` → none, `…tar+gzip` / Docker `…tar.gzip` → gzip.
 * zstd and anything else (encrypted layers, non-tar artifacts) are refused before a byte is read,
 * so nothing is written for them.
 */
export function compressionOf(mediaType: string): 'gzip' | 'none' {
  const type = (mediaType.split(';')[0] ?? '').trim().toLowerCase();
  if (/[+.]zstd$/.test(type)) throw zstdError();
  if (/[./]tar[+.]gzip$/.test(type)) return 'gzip';
  if (/[./]tar$/.test(type) || type === 'application/x-tar') return 'none';
  throw new UnsupportedLayerError('unsupported-media-type', undefined, `media type ${JSON.stringify(mediaType)} is not a tar layer (expected …tar, …tar+gzip or …tar.gzip)`);
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  return Buffer.from(String(chunk), 'latin1');
}

function startsWith(buf: Buffer, magic: readonly number[]): boolean {
  return buf.length >= magic.length && magic.every((b, i) => buf[i] === b);
}

/** Counts bytes through a stream and lets the meter abort it (by throwing) at any chunk. */
class MeterStream extends Transform {
  constructor(private readonly count: (n: number) => void) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.count(chunk.length);
      callback(null, chunk);
    } catch (err) {
      callback(err as Error);
    }
  }
}

/** Replays the sniffed head, then the rest of the source; releases the source however the stream ends. */
async function* replay(head: Buffer[], source: AsyncIterator<unknown>, meter: LayerMeter): AsyncGenerator<Buffer> {
  try {
    yield* head;
    for (;;) {
      const next = await source.next();
      if (next.done) return;
      const chunk = toBuffer(next.value);
      meter.onCompressed(chunk.length);
      yield chunk;
    }
  } finally {
    await source.return?.();
  }
}

/**
 * Opens `input` as a stream of decompressed tar bytes, metered by `meter`. The returned stream
 * errors with the meter's LayerLimitError as soon as a limit is crossed, and with zlib's error on a
 * corrupt or truncated gzip stream. Throws UnsupportedLayerError for zstd content.
 */
export async function openTarStream(input: LayerInput, meter: LayerMeter): Promise<Readable> {
  const source = (input as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let headBytes = 0;
  let ended = false;
  // Read just enough to see the magic number; the chunks are replayed untouched.
  while (headBytes < ZSTD_MAGIC.length) {
    const next = await source.next();
    if (next.done) {
      ended = true;
      break;
    }
    const chunk = toBuffer(next.value);
    meter.onCompressed(chunk.length);
    head.push(chunk);
    headBytes += chunk.length;
  }
  const magic = Buffer.concat(head).subarray(0, ZSTD_MAGIC.length);
  if (startsWith(magic, ZSTD_MAGIC)) {
    await source.return?.();
    throw zstdError();
  }
  const rest: AsyncIterator<unknown> = ended ? { next: async () => ({ done: true, value: undefined }) } : source;
  const raw = Readable.from(replay(head, rest, meter), { objectMode: false });
  const metered = new MeterStream((n) => meter.onDecompressed(n));
  // Errors surface through `metered` (pipeline destroys every stage with the first error).
  const ignore = (): void => undefined;
  return startsWith(magic, GZIP_MAGIC) ? pipeline(raw, createGunzip({ chunkSize: 64 * 1024 }), metered, ignore) : pipeline(raw, metered, ignore);
}
