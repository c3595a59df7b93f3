/**
 * Output credit of one Io stream: the client grants a window and reports what its reader has consumed (a
 * running total), both counted in message cost (`ioOutputCost`); the agent may send while
 * `sent - consumed` is below the window.
 */
export class OutputCredit {
  private sent = 0;
  private taken = 0;
  private waiter: (() => void) | undefined;

  constructor(
    /** Bytes the client accepts ahead of its reader; 0 = no limit. */
    readonly window: number,
  ) {}

  /** Bytes that may be sent now (Infinity without a window). */
  get room(): number {
    return this.window > 0 ? this.window - (this.sent - this.taken) : Infinity;
  }

  spend(bytes: number): void {
    this.sent += bytes;
  }

  /** The client's running total of consumed bytes; older or larger-than-sent totals are ignored. */
  consumed(total: number): void {
    if (total <= this.taken || total > this.sent) return;
    this.taken = total;
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  /** Resolves when credit was granted; rejects when `signal` aborts first. */
  changed(signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiter = () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
    });
  }
}
