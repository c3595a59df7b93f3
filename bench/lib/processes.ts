/**
 * Child processes of a bench: hard kills, a set of the ones still running (for clean-up), and
 * running a command or the real `hypercore` CLI with its output collected and its wall time measured.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { repoRoot, sleep, type TestDaemon } from '../../test/e2e/harness.js';

/** SIGKILLs `proc` and waits for its exit (at most 5 s); resolves at once when it has already exited. */
export function killHard(proc: ChildProcess | undefined): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  try {
    proc.kill('SIGKILL');
  } catch {
    // already gone
  }
  return Promise.race([exited, sleep(5_000)]);
}

/** The children a bench started that have not exited yet. */
export class ChildSet {
  private readonly live = new Set<ChildProcess>();

  /** Tracks `proc` until it exits, and returns it. */
  add<T extends ChildProcess>(proc: T): T {
    this.live.add(proc);
    proc.once('exit', () => this.live.delete(proc));
    return proc;
  }

  /** SIGKILLs every one, without waiting. */
  killAll(): void {
    for (const p of this.live) p.kill('SIGKILL');
  }

  /** SIGKILLs every one and waits for them to exit (see killHard). */
  async killAllHard(): Promise<void> {
    await Promise.all([...this.live].map((p) => killHard(p)));
  }
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  /** SIGKILL the process after this long. */
  timeoutMs: number;
  /** Appended to stderr (as `\n[bench] NOTE`) when the timeout kills the process. */
  timeoutNote?: string;
  /** Tracks the process there while it runs. */
  children?: ChildSet;
  /** Where `ms` counts from (performance.now()); by default the call. */
  t0?: number;
  /** Called with all of stdout so far after every chunk. */
  onStdout?: (stdout: string) => void;
}

export interface RunResult {
  /** Exit code; -1 when killed by a signal or never started. */
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** From t0 to the process's `close`. */
  ms: number;
  timedOut: boolean;
  /** Why it could not be started (also appended to stderr as `\n[bench] MESSAGE`). */
  error?: Error;
}

/** Runs `file` (no shell, stdin closed) to its end; never rejects. */
export function runProcess(file: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
  return new Promise((resolve) => {
    const t0 = options.t0 ?? performance.now();
    const p = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(options.env ? { env: options.env } : {}) });
    options.children?.add(p);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let error: Error | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      if (options.timeoutNote) stderr += `\n[bench] ${options.timeoutNote}`;
      p.kill('SIGKILL');
    }, Math.max(1, options.timeoutMs));
    p.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
      options.onStdout?.(stdout);
    });
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    p.on('error', (e) => {
      error = e;
      stderr += `\n[bench] ${e.message}`;
    });
    p.on('close', (code, signal) => {
      const ms = performance.now() - t0;
      clearTimeout(timer);
      resolve({ code: code ?? -1, signal, stdout, stderr, ms, timedOut, ...(error ? { error } : {}) });
    });
  });
}

/**
 * Runs the real CLI (`bin/hypercore`, a new node process) against `daemon`. On a timeout, stderr
 * gets `[bench] CLI timed out after N ms; killed` unless `noteTimeout` is false.
 */
export function runCli(daemon: TestDaemon, args: readonly string[], options: Omit<RunOptions, 'env' | 'timeoutNote'> & { noteTimeout?: boolean }): Promise<RunResult> {
  const { noteTimeout = true, ...rest } = options;
  return runProcess(process.execPath, [join(repoRoot, 'bin', 'hypercore'), ...args], {
    ...rest,
    env: daemon.env,
    ...(noteTimeout ? { timeoutNote: `CLI timed out after ${options.timeoutMs} ms; killed` } : {}),
  });
}
