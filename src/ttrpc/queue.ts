/**
 * A single-consumer async queue of received stream messages: `push` from the frame dispatcher, `next` from the
 * user. ttrpc has no flow control (PROTOCOL.md: no "flow control"), and the dispatcher must never block: one
 * connection carries every stream, so pausing the socket for one slow reader would stall all the others and
 * every unary call. The queue is therefore bounded in bytes instead: a peer that sends more than `maxBytes`
 * ahead of its reader overflows it, which drops what was buffered and fails the stream with
 * RESOURCE_EXHAUSTED. Protocols on top keep within the bound by pacing themselves (the agent's Io stream
 * grants output credit as its reader consumes). Go buffers 64 messages and closes the stream with
 * ErrStreamFull after 1 s, which bounds the count but not the bytes (64 × 4 MiB).
 */
import { Code, TtrpcError } from './errors.js';

/** Default bound of one stream's unread messages. */
export const DEFAULT_STREAM_BUFFER_BYTES = 16 * 1024 * 1024;
/** What one message costs beyond its bytes, so that a flood of empty messages is bounded too. */
const MESSAGE_OVERHEAD_BYTES = 64;

export class MessageQueue<T extends { byteLength: number }> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private head = 0;
  private bytes = 0;
  private waiter: { resolve: (v: T | undefined) => void; reject: (e: unknown) => void } | null = null;
  private finished = false;
  private error: unknown = undefined;
  private failed = false;

  constructor(
    /** Unread bytes beyond which `push` overflows (Infinity: unbounded, for a peer that is trusted). */
    readonly maxBytes: number = DEFAULT_STREAM_BUFFER_BYTES,
  ) {}

  /** True once `end` or `fail` was called (buffered items may still be waiting to be read). */
  get closed(): boolean {
    return this.finished || this.failed;
  }

  /** Bytes received and not read yet (each message counted with a small fixed overhead). */
  get bufferedBytes(): number {
    return this.bytes;
  }

  /**
   * Adds a message; ignored after end/fail. Returns false, and buffers nothing, when the message would take
   * the unread bytes past `maxBytes` (the caller then ends the stream, see {@link overflow}).
   */
  push(item: T): boolean {
    if (this.closed) return true;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve(item);
      return true;
    }
    const cost = item.byteLength + MESSAGE_OVERHEAD_BYTES;
    if (this.bytes + cost > this.maxBytes) return false;
    this.items.push(item);
    this.bytes += cost;
    return true;
  }

  /** Drops everything buffered (so it is freed now) and fails the queue with the overflow error. */
  overflow(what: string): TtrpcError {
    const err = new TtrpcError(Code.RESOURCE_EXHAUSTED, `ttrpc: ${what} sent more than ${this.maxBytes} bytes ahead of its reader`);
    this.items.length = 0;
    this.head = 0;
    this.bytes = 0;
    this.fail(err);
    return err;
  }

  /** Marks a clean end; buffered messages are still delivered first. */
  end(): void {
    if (this.closed) return;
    this.finished = true;
    this.settleWaiter();
  }

  /** Marks failure; buffered messages are still delivered first (as Go does), then `next` rejects. */
  fail(err: unknown): void {
    if (this.closed) return;
    this.failed = true;
    this.error = err;
    this.settleWaiter();
  }

  /** Next message, `undefined` at a clean end; rejects after a failure. */
  next(): Promise<T | undefined> {
    if (this.head < this.items.length) {
      const item = this.items[this.head] as T;
      this.items[this.head] = undefined as unknown as T; // release memory of consumed messages early
      this.head++;
      this.bytes -= item.byteLength + MESSAGE_OVERHEAD_BYTES;
      if (this.head === this.items.length) {
        this.items.length = 0;
        this.head = 0;
      }
      return Promise.resolve(item);
    }
    if (this.failed) return Promise.reject(this.error);
    if (this.finished) return Promise.resolve(undefined);
    if (this.waiter) return Promise.reject(new Error('ttrpc: concurrent reads on one stream'));
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: async (): Promise<IteratorResult<T>> => {
        const v = await this.next();
        return v === undefined ? { done: true, value: undefined } : { done: false, value: v };
      },
    };
  }

  private settleWaiter(): void {
    const w = this.waiter;
    if (!w) return;
    this.waiter = null;
    if (this.failed) w.reject(this.error);
    else w.resolve(undefined);
  }
}
