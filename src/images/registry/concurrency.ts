/** Small concurrency helpers for pulls: a parallelism limiter and an in-flight de-duplicator. */

/** Runs at most `max` tasks at once; the rest wait in FIFO order. */
export class Limiter {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`a limiter needs max >= 1 (got ${max})`);
  }

  /** Tasks currently running. */
  get running(): number {
    return this.active;
  }

  /** Runs `task` once a slot is free; the slot is released however the task ends. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await task();
    } finally {
      // Hand the slot straight to the next waiter so `active` never dips and lets a newcomer jump the queue.
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}

interface Flight<T, P> {
  promise: Promise<T>;
  listeners: Set<(progress: P) => void>;
  last?: P;
}

/**
 * Shares one run of a task among concurrent callers with the same key (e.g. two pulls needing
 * the same layer): the task starts once, everyone gets its result, and progress reports fan out
 * to every caller's listener. The key is forgotten when the task settles, so a later call starts afresh.
 */
export class InFlight<T, P = never> {
  private readonly flights = new Map<string, Flight<T, P>>();

  /** Number of tasks currently running. */
  get size(): number {
    return this.flights.size;
  }

  /** Joins the running task for `key`, or starts `start` (which reports progress via `report`). */
  run(key: string, start: (report: (progress: P) => void) => Promise<T>, onProgress?: (progress: P) => void): Promise<T> {
    const existing = this.flights.get(key);
    if (existing) {
      if (onProgress) {
        existing.listeners.add(onProgress);
        // A late joiner sees where the shared task already is.
        if (existing.last !== undefined) onProgress(existing.last);
      }
      return existing.promise;
    }
    const flight: Flight<T, P> = { promise: Promise.resolve() as Promise<never>, listeners: new Set() };
    if (onProgress) flight.listeners.add(onProgress);
    const report = (progress: P): void => {
      flight.last = progress;
      for (const listener of flight.listeners) listener(progress);
    };
    // Started on a microtask so `start` never runs before the flight is registered.
    flight.promise = Promise.resolve()
      .then(() => start(report))
      .finally(() => this.flights.delete(key));
    this.flights.set(key, flight);
    return flight.promise;
  }
}
