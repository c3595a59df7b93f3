/**
 * A single-consumer async queue of received stream messages: `push` from the frame dispatcher, `next` from the
 * user. ttrpc has no flow control (PROTOCOL.md: no "flow control"), so the queue is unbounded; Go instead
 * buffers 64 messages and closes the stream with ErrStreamFull after 1 s, which would only turn a slow
 * consumer into an error here, where the dispatcher never blocks.
 */
export class MessageQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private head = 0;
  private waiter: { resolve: (v: T | undefined) => void; reject: (e: unknown) => void } | null = null;
  private finished = false;
  private error: unknown = undefined;
  private failed = false;

  /** True once `end` or `fail` was called (buffered items may still be waiting to be read). */
  get closed(): boolean {
    return this.finished || this.failed;
  }

  /** Adds a message; ignored after end/fail. */
  push(item: T): void {
    if (this.closed) return;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve(item);
      return;
    }
    this.items.push(item);
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
      this.items[this.head] = undefined as T; // release memory of consumed messages early
      this.head++;
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
