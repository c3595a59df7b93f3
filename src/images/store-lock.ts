/**
 * Guards the image store against garbage collection racing its users: pulls, imports and VM disk
 * creation hold the lock shared while they write or use blobs and block images that no image
 * record refers to yet; prune and failure clean-up hold it exclusively.
 *
 * Shared holders never wait for a queued exclusive one: a pull nested in a VM create (both shared)
 * must not queue behind a prune that waits for the create, which would deadlock. A prune may so
 * wait for a busy store to go quiet; pulls end, so it does not wait forever.
 */
export class StoreLock {
  private shared = 0;
  private exclusive = false;
  private sharedWaiters: (() => void)[] = [];
  private exclusiveWaiters: (() => void)[] = [];

  /** Runs `fn` alongside other shared holders, never during an exclusive one. */
  async runShared<T>(fn: () => Promise<T>): Promise<T> {
    if (this.exclusive) await new Promise<void>((grant) => this.sharedWaiters.push(grant));
    else this.shared++;
    try {
      return await fn();
    } finally {
      this.shared--;
      this.wake();
    }
  }

  /** Runs `fn` alone: no shared or other exclusive holder runs meanwhile. */
  async runExclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.exclusive || this.shared > 0) await new Promise<void>((grant) => this.exclusiveWaiters.push(grant));
    else this.exclusive = true;
    try {
      return await fn();
    } finally {
      this.exclusive = false;
      this.wake();
    }
  }

  /** Whether anyone holds the lock (for tests and diagnostics). */
  get busy(): boolean {
    return this.exclusive || this.shared > 0;
  }

  private wake(): void {
    if (this.exclusive) return;
    if (this.sharedWaiters.length > 0) {
      const waiters = this.sharedWaiters;
      this.sharedWaiters = [];
      this.shared += waiters.length;
      for (const grant of waiters) grant();
      return;
    }
    if (this.shared === 0 && this.exclusiveWaiters.length > 0) {
      this.exclusive = true;
      this.exclusiveWaiters.shift()!();
    }
  }
}
