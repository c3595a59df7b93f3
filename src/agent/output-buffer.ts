/**
 * A process's output, kept in a bounded ring so that output produced while no host is attached
 * (the daemon restarting, the channel reconnecting) can still be read later. Offsets are absolute:
 * byte N of the output keeps offset N forever, so a reader that saw up to N resumes exactly there,
 * and a reader that asks for bytes already evicted learns how many it missed.
 *
 * A reader may also hold the output (exec's client, the host's workload log): bytes it has not read are
 * then never evicted, and once it is a whole buffer behind the producer is told to pause (the process
 * then blocks on its full pipe, as it would writing to a slow terminal). The buffer may pass its capacity
 * by the one chunk that was already read from the pipe when the pause began. Readers that do not hold
 * (followers such as attach) skip what was evicted and learn how much through `dropped`.
 */

/** Default ring size per process. */
export const DEFAULT_OUTPUT_BYTES = 1024 * 1024;

/** A run of bytes from one fd (1 stdout, 2 stderr) starting at an absolute output offset. */
export interface OutputChunk {
  fd: number;
  offset: number;
  data: Buffer;
}

/** What one read returns. */
export interface OutputRead {
  /** Consecutive chunks; adjacent chunks of the same fd are merged up to the read's size limit. */
  chunks: OutputChunk[];
  /** Bytes between the requested offset and the oldest byte still buffered (evicted before anyone read them). */
  dropped: number;
  /** The offset to ask for next. */
  next: number;
}

/** A reader that holds the output: see the module comment. */
export interface OutputHold {
  /** The reader has taken everything before `offset`. */
  advance(offset: number): void;
  /** The reader is gone; its unread bytes may be evicted. */
  release(): void;
}

/** Bounded, fd-tagged output with absolute offsets, readable by any number of readers at their own pace. */
export class OutputBuffer {
  private chunks: OutputChunk[] = [];
  private head = 0;
  private size = 0;
  private total = 0;
  private evicted = 0;
  private ended = false;
  private waiters = new Set<() => void>();
  private readonly holds = new Set<{ position: number }>();
  private pressed = false;
  /** Told when the producer should pause (true) and when it may go on (false). */
  onPressure: ((full: boolean) => void) | undefined;

  constructor(readonly capacity: number = DEFAULT_OUTPUT_BYTES) {
    if (!(capacity > 0)) throw new RangeError('output buffer capacity must be positive');
  }

  /** Offset of the oldest byte still buffered. */
  get start(): number {
    return this.total - this.size;
  }

  /** Offset just past the newest byte (= bytes ever written). */
  get end(): number {
    return this.total;
  }

  /** Bytes evicted so far. */
  get droppedBytes(): number {
    return this.evicted;
  }

  /** True while a holding reader is a whole buffer behind: the producer should pause. */
  get full(): boolean {
    return this.pressed;
  }

  /** True once the producer is done (the process exited and its output was drained). */
  get closed(): boolean {
    return this.ended;
  }

  /** Adds output; evicts the oldest bytes beyond the capacity. Ignored once closed. */
  append(fd: number, data: Buffer): void {
    if (this.ended || data.length === 0) return;
    this.chunks.push({ fd, offset: this.total, data });
    this.total += data.length;
    this.size += data.length;
    this.evict();
    this.updatePressure();
    this.wake();
  }

  /** Registers a reader that holds the output from `from` on (see the module comment). */
  hold(from: number): OutputHold {
    const h = { position: Math.min(Math.max(from, this.start), this.total) };
    this.holds.add(h);
    const changed = (): void => {
      this.evict();
      this.updatePressure();
    };
    changed();
    return {
      advance: (offset) => {
        if (offset <= h.position) return;
        h.position = Math.min(offset, this.total);
        changed();
      },
      release: () => {
        if (this.holds.delete(h)) changed();
      },
    };
  }

  /** Marks the end of the output (wakes waiting readers so they can send the exit status). */
  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.updatePressure();
    this.wake();
  }

  /**
   * Output from `from` on, at most about `maxBytes` (whole merged chunks; one chunk may be split).
   * An offset before the buffer's start reads from the start and reports the gap as `dropped`;
   * one past the end reads nothing.
   */
  read(from: number, maxBytes = 64 * 1024): OutputRead {
    const start = this.start;
    const dropped = from < start ? start - from : 0;
    let at = Math.min(Math.max(from, start), this.total);
    const out: OutputChunk[] = [];
    let budget = maxBytes;
    for (let i = this.find(at); i < this.chunks.length && budget > 0; i++) {
      const chunk = this.chunks[i]!;
      const skip = at - chunk.offset;
      const take = Math.min(chunk.data.length - skip, budget);
      const data = chunk.data.subarray(skip, skip + take);
      const last = out[out.length - 1];
      if (last && last.fd === chunk.fd) last.data = Buffer.concat([last.data, data]);
      else out.push({ fd: chunk.fd, offset: at, data });
      at += take;
      budget -= take;
    }
    return { chunks: out, dropped, next: at };
  }

  /**
   * Resolves at the next append or close; rejects with the signal's reason when it aborts first.
   * Readers call it when `read` returned nothing.
   */
  changed(signal?: AbortSignal): Promise<void> {
    if (this.ended) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.waiters.delete(wake);
        reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
      };
      const wake = (): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(wake);
    });
  }

  private wake(): void {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const w of waiters) w();
  }

  /** Index of the chunk holding offset `at` (binary search; chunks are in offset order). */
  private find(at: number): number {
    let lo = this.head;
    let hi = this.chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = this.chunks[mid]!;
      if (c.offset + c.data.length <= at) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Offset of the oldest byte some holding reader still needs (Infinity when none holds). */
  private lowestHold(): number {
    let low = Infinity;
    for (const h of this.holds) low = Math.min(low, h.position);
    return low;
  }

  private updatePressure(): void {
    const full = !this.ended && this.total - this.lowestHold() >= this.capacity;
    if (full === this.pressed) return;
    this.pressed = full;
    this.onPressure?.(full);
  }

  private evict(): void {
    // Never evict what a holding reader has not read yet.
    let excess = Math.min(this.size - this.capacity, this.lowestHold() - this.start);
    while (excess > 0) {
      const oldest = this.chunks[this.head]!;
      if (oldest.data.length <= excess) {
        this.head++;
        this.size -= oldest.data.length;
        this.evicted += oldest.data.length;
        excess -= oldest.data.length;
      } else {
        // Keep the tail of a chunk rather than dropping more than needed.
        oldest.data = oldest.data.subarray(excess);
        oldest.offset += excess;
        this.size -= excess;
        this.evicted += excess;
        excess = 0;
      }
    }
    // Compact now and then so the array does not grow with every chunk ever written.
    if (this.head > 1024 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }
}
