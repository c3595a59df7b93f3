/**
 * TTRPC wire framing: frame encoder and an incremental frame decoder.
 *
 * Facts relied on (and where they come from):
 * - Frame = 10-byte header + data. Header: data length u32 big-endian, stream id u32 big-endian,
 *   message type u8, flags u8. (containerd/ttrpc channel.go `messageHeader`, `messageHeaderLength = 10`;
 *   PROTOCOL.md "Message Frame"; shared/facts/containerd-shim.md §3 "Frame".)
 * - Max data length is `4 << 20` = 4 MiB, inclusive: the receiver rejects only `Length > messageLengthMax`
 *   (channel.go `recv`), the sender refuses `len(p) > messageLengthMax` (channel.go `send`, HEAD 4b166fb;
 *   ttrpc v1.1.1, vendored by containerd 1.6.20, has no send-side check).
 * - An oversized incoming frame does NOT poison the connection in Go: `recv` discards exactly `Length` bytes
 *   (`br.Discard`) and returns a ResourceExhausted status "message length %v exceed maximum message size of %v"
 *   together with the header; the server answers it with a Response carrying that status on the frame's
 *   stream id, the client fails that one stream (server.go / client.go `receiveLoop`, v1.1.1 and HEAD).
 * - Types: 0x1 request, 0x2 response, 0x3 data (data exists since ttrpc 1.2). Flags: 0x1 remote closed,
 *   0x2 remote open, 0x4 no data; a request with flags 0 is unary; responses carry no flags (PROTOCOL.md).
 * - Client stream ids are odd, start at 1 and increase by 2, never reused; even ids would be server-initiated
 *   streams, which are not supported (PROTOCOL.md; client.go `createStream`; server.go rejects even ids and
 *   non-increasing request ids with InvalidArgument). Observed on the wire from containerd 1.6.20:
 *   sid 1, 3, 5, … with flags 0 (containerd-shim.md §2b).
 * - The first header byte is always 0 because 4 MiB < 16 MiB; it is "reserved" (PROTOCOL.md). A non-zero
 *   first byte simply shows up as an oversized length and is handled like one.
 *
 * What the decoder does with an oversized declared length (`oversize` option):
 * - `'skip'` (default, Go behaviour): it discards the next `length` bytes as they arrive (nothing is buffered)
 *   and then emits an `oversize` event carrying a {@link FrameTooLargeError}; decoding continues after it.
 * - `'fail'`: it emits the `oversize` event at once and stops; every later `push` throws the same error.
 *   Use it where the peer is not trusted to be speaking ttrpc at all (a garbage length could be ~4 GiB).
 */

/** Length of the fixed frame header in bytes. */
export const HEADER_LENGTH = 10;
/** Largest data length a frame may carry (4 MiB, inclusive), as in containerd/ttrpc `messageLengthMax`. */
export const MESSAGE_LENGTH_MAX = 4 << 20;
/** Largest stream id representable on the wire. */
export const STREAM_ID_MAX = 0xffff_ffff;

/** Frame message types. */
export const MessageType = { Request: 0x1, Response: 0x2, Data: 0x3 } as const;
/** Frame flag bits (meaning depends on the message type, see PROTOCOL.md). */
export const Flags = { RemoteClosed: 0x1, RemoteOpen: 0x2, NoData: 0x4 } as const;

/** The decoded 10-byte frame header. */
export interface FrameHeader {
  /** Data length in bytes, excluding the header. */
  length: number;
  streamId: number;
  /** Message type byte; unknown values are passed through (Go ignores them for forward compatibility). */
  type: number;
  flags: number;
}

/** One complete frame. `data` may be a view into a pushed chunk (no copy when a frame lies in one chunk). */
export interface Frame extends FrameHeader {
  data: Buffer;
}

/** Raised for a frame whose data length exceeds the maximum; `code` is gRPC RESOURCE_EXHAUSTED (8). */
export class FrameTooLargeError extends Error {
  /** gRPC status code RESOURCE_EXHAUSTED, so it can be sent as a status as is. */
  readonly code = 8;
  override readonly name = 'FrameTooLargeError';
  constructor(
    readonly length: number,
    readonly maxLength: number,
    readonly header?: FrameHeader,
  ) {
    // Same wording as Go's status so both sides log the same text.
    super(`message length ${length} exceed maximum message size of ${maxLength}`);
  }
}

/** What {@link FrameDecoder.push} yields: a frame, or the notice that an oversized frame was rejected. */
export type DecodeEvent =
  | { kind: 'frame'; frame: Frame }
  | { kind: 'oversize'; header: FrameHeader; error: FrameTooLargeError };

/** Writes the 10-byte header into `target` at `offset`. */
export function writeHeader(target: Uint8Array, offset: number, h: FrameHeader): void {
  const view = new DataView(target.buffer, target.byteOffset + offset, HEADER_LENGTH);
  view.setUint32(0, h.length);
  view.setUint32(4, h.streamId);
  view.setUint8(8, h.type);
  view.setUint8(9, h.flags);
}

/**
 * Encodes one frame (header + data) into a single buffer, so that one transport write carries one whole
 * frame and frames from concurrent streams can never interleave. Throws {@link FrameTooLargeError}.
 */
export function encodeFrame(
  streamId: number,
  type: number,
  flags: number,
  data: Uint8Array = new Uint8Array(0),
  maxLength: number = MESSAGE_LENGTH_MAX,
): Buffer {
  if (!Number.isInteger(streamId) || streamId < 0 || streamId > STREAM_ID_MAX) {
    throw new RangeError(`ttrpc: invalid stream id ${streamId}`);
  }
  if (data.length > maxLength) throw new FrameTooLargeError(data.length, maxLength);
  const out = Buffer.allocUnsafe(HEADER_LENGTH + data.length);
  writeHeader(out, 0, { length: data.length, streamId, type: type & 0xff, flags: flags & 0xff });
  out.set(data, HEADER_LENGTH);
  return out;
}

/** Options for {@link FrameDecoder}. */
export interface DecoderOptions {
  /** Maximum accepted data length; defaults to 4 MiB. */
  maxLength?: number;
  /** What to do after an oversized header; see the module comment. Default `'skip'`. */
  oversize?: 'skip' | 'fail';
}

/**
 * Incremental frame decoder. Each pushed byte is looked at once: the header is assembled in a fixed 10-byte
 * buffer, a body that lies entirely in one chunk is returned as a view of it, and a body split across chunks
 * is copied once into a buffer of its final size. No re-buffering, so cost is linear in the bytes received.
 */
export class FrameDecoder {
  private readonly maxLength: number;
  private readonly mode: 'skip' | 'fail';
  private readonly header = Buffer.alloc(HEADER_LENGTH);
  private headerFill = 0;
  private current: FrameHeader | null = null;
  private body: Buffer | null = null;
  private bodyFill = 0;
  private skipRemaining = 0;
  private skipped: FrameHeader | null = null;
  private failure: FrameTooLargeError | null = null;

  constructor(options: DecoderOptions = {}) {
    this.maxLength = options.maxLength ?? MESSAGE_LENGTH_MAX;
    this.mode = options.oversize ?? 'skip';
  }

  /** Bytes held for an incomplete frame (header bytes, body bytes, or bytes still to discard). */
  get pendingBytes(): number {
    if (this.skipRemaining > 0) return this.skipRemaining;
    return this.current ? HEADER_LENGTH + this.bodyFill : this.headerFill;
  }

  /** True when the decoder sits exactly between two frames (a clean place for the stream to end). */
  get atBoundary(): boolean {
    return this.headerFill === 0 && this.current === null && this.skipRemaining === 0;
  }

  /** Feeds a chunk; returns the frames (and oversize notices) completed by it, in wire order. */
  push(input: Uint8Array): DecodeEvent[] {
    if (this.failure) throw this.failure;
    const chunk = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    const out: DecodeEvent[] = [];
    let off = 0;
    while (off < chunk.length) {
      if (this.skipRemaining > 0) {
        const n = Math.min(this.skipRemaining, chunk.length - off);
        this.skipRemaining -= n;
        off += n;
        if (this.skipRemaining === 0 && this.skipped) {
          const header = this.skipped;
          this.skipped = null;
          out.push({ kind: 'oversize', header, error: new FrameTooLargeError(header.length, this.maxLength, header) });
        }
        continue;
      }
      if (this.current === null) {
        let h: FrameHeader;
        if (this.headerFill === 0 && chunk.length - off >= HEADER_LENGTH) {
          h = readHeader(chunk, off);
          off += HEADER_LENGTH;
        } else {
          const n = Math.min(HEADER_LENGTH - this.headerFill, chunk.length - off);
          chunk.copy(this.header, this.headerFill, off, off + n);
          this.headerFill += n;
          off += n;
          if (this.headerFill < HEADER_LENGTH) break;
          this.headerFill = 0;
          h = readHeader(this.header, 0);
        }
        if (h.length > this.maxLength) {
          const error = new FrameTooLargeError(h.length, this.maxLength, h);
          if (this.mode === 'fail') {
            this.failure = error;
            out.push({ kind: 'oversize', header: h, error });
            return out;
          }
          this.skipRemaining = h.length;
          this.skipped = h;
          continue;
        }
        if (h.length === 0) {
          out.push({ kind: 'frame', frame: { ...h, data: Buffer.alloc(0) } });
          continue;
        }
        this.current = h;
        this.bodyFill = 0;
      }
      // Header ended exactly at the chunk end: wait for body bytes (allocating now would leave a buffer
      // behind that the zero-copy path below never uses).
      if (off === chunk.length) break;
      const h = this.current;
      if (this.bodyFill === 0 && chunk.length - off >= h.length) {
        // Whole body inside this chunk: hand out a view, no copy.
        out.push({ kind: 'frame', frame: { ...h, data: chunk.subarray(off, off + h.length) } });
        off += h.length;
        this.current = null;
        continue;
      }
      if (this.body === null) this.body = Buffer.allocUnsafe(h.length);
      const n = Math.min(h.length - this.bodyFill, chunk.length - off);
      chunk.copy(this.body, this.bodyFill, off, off + n);
      this.bodyFill += n;
      off += n;
      if (this.bodyFill === h.length) {
        out.push({ kind: 'frame', frame: { ...h, data: this.body } });
        this.body = null;
        this.bodyFill = 0;
        this.current = null;
      }
    }
    return out;
  }
}

function readHeader(buf: Buffer, off: number): FrameHeader {
  return {
    length: buf.readUInt32BE(off),
    streamId: buf.readUInt32BE(off + 4),
    type: buf[off + 8] ?? 0,
    flags: buf[off + 9] ?? 0,
  };
}
