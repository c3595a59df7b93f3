/**
 * A bench's life cycle: one clean-up that runs exactly once, whether the bench ends, fails, gets
 * SIGINT/SIGTERM (exit 130) or overruns its watchdog (exit 1); and the top-level runner.
 */

export interface CleanupOptions {
  /** On a signal, print `[bench] SIGINT: cleaning up` on stderr first (default true). */
  announceSignal?: boolean;
  /** After `ms`, print `message` on stderr, clean up and exit 1. */
  watchdog?: { ms: number; message: string };
}

export interface CleanupGuard {
  /** Runs the clean-up; every later call returns the same promise. */
  run(): Promise<void>;
  /** Whether run() has been called (by the bench, a signal or the watchdog). */
  readonly started: boolean;
  /** Disarms the watchdog (finish() does too). */
  stopWatchdog(): void;
  /** For the bench's `finally`: disarms the watchdog, awaits the clean-up, then stops handling signals. */
  finish(): Promise<void>;
}

/** Installs the SIGINT/SIGTERM handlers (and the watchdog) around `cleanup`. */
export function guardCleanup(cleanup: () => Promise<void>, options: CleanupOptions = {}): CleanupGuard {
  let running: Promise<void> | undefined;
  const run = (): Promise<void> => (running ??= cleanup());
  const onSignal = (sig: NodeJS.Signals): void => {
    if (options.announceSignal ?? true) console.error(`\n[bench] ${sig}: cleaning up`);
    void run().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const { watchdog } = options;
  const timer = watchdog
    ? setTimeout(() => {
        console.error(watchdog.message);
        void run().finally(() => process.exit(1));
      }, watchdog.ms)
    : undefined;
  const stopWatchdog = (): void => clearTimeout(timer);
  return {
    run,
    get started() {
      return running !== undefined;
    },
    stopWatchdog,
    async finish() {
      stopWatchdog();
      await run();
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
    },
  };
}

/** Runs a bench's `main`: exit 0 when it resolves; otherwise `bench failed: STACK` on stderr and exit 1. */
export function runBench(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(`\nbench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      process.exit(1);
    },
  );
}
