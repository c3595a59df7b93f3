/**
 * One framed connection over a {@link Transport}: a read loop feeding a {@link FrameDecoder}, and an ordered
 * writer. Shared by the client and the server side; it knows nothing about requests or streams.
 */
import { ConnectionClosedError } from './errors.js';
import { encodeFrame, FrameDecoder, type Frame, type FrameHeader, type FrameTooLargeError } from './framing.js';
import type { Transport } from './transport.js';

/** Callbacks of a {@link FrameConnection}. */
export interface FrameSink {
  /** A complete frame arrived. */
  onFrame(frame: Frame): void;
  /** An oversized frame was received and its data discarded (Go behaviour); the connection stays usable. */
  onOversize(header: FrameHeader, error: FrameTooLargeError): void;
  /** The connection is gone; called exactly once, with the reason. */
  onClose(reason: ConnectionClosedError): void;
}

/** Framed, ordered, close-once connection. */
export class FrameConnection {
  private readonly decoder = new FrameDecoder();
  /** Pending asynchronous write; later frames are chained behind it to keep wire order. */
  private tail: Promise<void> | null = null;
  private closeReason: ConnectionClosedError | null = null;

  constructor(
    private readonly transport: Transport,
    private readonly sink: FrameSink,
  ) {
    void this.readLoop();
  }

  /** Why the connection closed, or null while open. */
  get closed(): ConnectionClosedError | null {
    return this.closeReason;
  }

  /**
   * Queues one frame. Throws {@link FrameTooLargeError} (nothing is sent) or the close reason; write failures
   * later close the connection (and so reach every pending call) instead of being thrown here.
   */
  send(streamId: number, type: number, flags: number, data?: Uint8Array): void {
    if (this.closeReason) throw this.closeReason;
    const frame = encodeFrame(streamId, type, flags, data);
    if (this.tail) {
      this.track(this.tail.then(() => (this.closeReason ? undefined : this.write(frame))));
      return;
    }
    const r = this.write(frame);
    if (r) this.track(r);
  }

  /** Resolves once everything queued so far was handed to the transport (or the connection closed). */
  drained(): Promise<void> {
    return this.tail ?? Promise.resolve();
  }

  /** Closes the transport; `onClose` fires with a ConnectionClosedError carrying `message`. */
  close(message = 'ttrpc: closed', cause?: unknown): void {
    if (this.closeReason) return;
    this.closeReason = new ConnectionClosedError(message, cause);
    try {
      this.transport.close();
    } catch {
      // Closing is best effort; the reason is already recorded.
    }
    this.sink.onClose(this.closeReason);
  }

  private write(frame: Buffer): Promise<void> | undefined {
    try {
      const r = this.transport.write(frame);
      if (r instanceof Promise) return r.then(() => undefined);
    } catch (err) {
      this.close(`ttrpc: write failed: ${errorText(err)}`, err);
    }
    return undefined;
  }

  private track(p: Promise<void | undefined>): void {
    const settled: Promise<void> = p.then(
      () => {
        if (this.tail === settled) this.tail = null;
      },
      (err: unknown) => {
        if (this.tail === settled) this.tail = null;
        this.close(`ttrpc: write failed: ${errorText(err)}`, err);
      },
    );
    this.tail = settled;
  }

  private async readLoop(): Promise<void> {
    try {
      for await (const chunk of this.transport.readable) {
        if (this.closeReason) return;
        const events = this.decoder.push(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk);
        for (const ev of events) {
          if (this.closeReason) return;
          if (ev.kind === 'frame') this.sink.onFrame(ev.frame);
          else this.sink.onOversize(ev.header, ev.error);
        }
      }
      const midFrame = this.decoder.atBoundary ? '' : ` in the middle of a frame (${this.decoder.pendingBytes} bytes pending)`;
      this.close(`ttrpc: connection closed by peer${midFrame}`);
    } catch (err) {
      this.close(`ttrpc: connection lost: ${errorText(err)}`, err);
    }
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
