/**
 * A one-shot helper process started ahead of need. Under TCG the agent (node) forking and executing
 * a process costs the guest tens of milliseconds, and a restored guest needs its helper at once; a spare started
 * while the VM idles is in every snapshot taken later, so a restore finds it already running,
 * blocked on its first stdin line. A request is that one line (tab-separated fields); the helper
 * answers by its exit: 0 is done, anything else fails with its stderr. Without a live spare the
 * request starts the helper itself, so correctness never depends on the spare.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { CommandFailedError } from '../core/errors.js';
import { describeCommand, tailLines } from '../system/command.js';
import { errorText, silentLog, type Log } from './log.js';

/** stderr kept for the error message: the helper's own error lines are short. */
const STDERR_LIMIT = 4096;

export interface SpareProcessOptions {
  /** Kills the helper when one request takes longer. */
  timeoutMs: number;
  /** After a request, the next spare starts this much later, off the path of what follows a restore. */
  respareAfterMs: number;
  log?: Log;
}

interface Running {
  child: ChildProcess;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; error?: Error }>;
  exited: boolean;
}

export class SpareProcess {
  private spare: Running | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly log: Log;

  constructor(
    private readonly file: string,
    private readonly args: readonly string[],
    private readonly options: SpareProcessOptions,
  ) {
    this.log = options.log ?? silentLog;
  }

  /** Starts the spare after `delayMs` (replacing a pending start); nothing if a live spare waits. */
  prepareIn(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.prepare(), delayMs);
    this.timer.unref();
  }

  /** Starts the spare now, unless a live one waits. */
  prepare(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.spare && !this.spare.exited) return;
    this.spare = this.start();
  }

  /** Whether a started spare is waiting for its request. */
  get ready(): boolean {
    return this.spare !== undefined && !this.spare.exited;
  }

  /** The waiting spare's pid. */
  get sparePid(): number | undefined {
    return this.ready ? this.spare!.child.pid : undefined;
  }

  /** Hands `fields` to the spare (or a new helper), resolves when it exited 0. */
  async request(fields: readonly string[]): Promise<void> {
    for (const f of fields) if (/[\t\n]/.test(f)) throw new Error(`a helper request field contains a tab or newline: ${JSON.stringify(f.slice(0, 40))}`);
    clearTimeout(this.timer);
    const helper = this.spare && !this.spare.exited ? this.spare : this.start();
    this.spare = undefined;
    try {
      await this.run(helper, `${fields.join('\t')}\n`);
    } finally {
      this.prepareIn(this.options.respareAfterMs);
    }
  }

  /** Kills a waiting spare and stops making new ones. */
  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.spare?.child.kill('SIGKILL');
    this.spare = undefined;
  }

  private start(): Running {
    const child = spawn(this.file, this.args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => {
      stderr = (stderr + c.toString('utf8')).slice(-STDERR_LIMIT);
    });
    // EPIPE when the helper died before its request: its exit says why.
    child.stdin!.on('error', () => undefined);
    const running: Running = {
      child,
      exited: false,
      exit: new Promise((resolve) => {
        child.once('error', (error) => {
          running.exited = true;
          resolve({ code: null, signal: null, stderr, error });
        });
        child.once('close', (code, signal) => {
          running.exited = true;
          resolve({ code, signal, stderr });
        });
      }),
    };
    void running.exit.then((r) => {
      if (this.spare === running) this.log(`spare ${this.file} ended before it was needed: ${r.error ? errorText(r.error) : `code ${r.code} ${r.signal ?? ''}`}`);
    });
    return running;
  }

  private async run(helper: Running, line: string): Promise<void> {
    const command = describeCommand(this.file, this.args);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      helper.child.kill('SIGKILL');
    }, this.options.timeoutMs);
    helper.child.stdin!.end(line);
    const r = await helper.exit.finally(() => clearTimeout(timer));
    if (r.error) throw new CommandFailedError({ command, exitCode: null, signal: null, stderrTail: '', reason: `could not be started: ${r.error.message}` });
    if (r.code === 0 && !timedOut) return;
    const reason = timedOut ? `timed out after ${this.options.timeoutMs} ms` : undefined;
    throw new CommandFailedError({ command, exitCode: r.code, signal: r.signal, stderrTail: tailLines(r.stderr, STDERR_LIMIT), ...(reason ? { reason } : {}) });
  }
}
