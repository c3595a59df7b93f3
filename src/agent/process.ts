/**
 * One process started by the agent: with pipes (child_process) or a pseudo-terminal (node-pty, or
 * for a container's process a pty it makes its controlling terminal itself), its output in a ring
 * buffer that outlives any reader, its stdin, and its exit status.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { Code, TtrpcError } from '../ttrpc/index.js';
import { CrunErrorFilter } from './crun-errors.js';
import { HelperChild, type PipedChild } from './exec-helper.js';
import type { Launch } from './launch.js';
import { OutputBuffer, type OutputHold } from './output-buffer.js';
import type { ProcessInfo } from './protocol/messages.js';
import { loadPty, openDetachedPty, type DetachedPty, type Pty } from './pty.js';

/** How a process ended: exit code (128+n when killed by signal n, as shells and Docker report it) and signal name. */
export interface ExitInfo {
  exitCode: number;
  signal?: string;
}

/** After exit, how long to wait for the pipes to close (a background child may hold them open). */
const PIPE_CLOSE_GRACE_MS = 2000;
/** How long a new process's output is held for its first reader (see the constructor). */
const FIRST_READER_GRACE_MS = 5000;
/** How long output that might be a crun error is held back at most. */
const CRUN_HOLD_MS = 2000;

/** Name of signal number `n` (SIGTERM for 15), or `SIG<n>` for unknown numbers. */
export function signalName(n: number): string {
  for (const [name, num] of Object.entries(constants.signals)) if (num === n) return name;
  return `SIG${n}`;
}

/** Parses "SIGTERM", "TERM", "sigterm" or "15" into a signal Node can send. */
export function parseSignal(text: string): NodeJS.Signals {
  const t = text.trim().toUpperCase();
  const signals = constants.signals as Record<string, number>;
  if (/^\d+$/.test(t)) {
    const name = signalName(Number(t));
    if (name in signals) return name as NodeJS.Signals;
  } else {
    const name = t.startsWith('SIG') ? t : `SIG${t}`;
    if (name in signals) return name as NodeJS.Signals;
  }
  throw new TtrpcError(Code.INVALID_ARGUMENT, `unknown signal "${text}"`);
}

/** Output buffering of a process. */
export interface OutputOptions {
  /** Ring size. */
  bufferBytes: number;
  /** How long output is held from byte 0 for the first holding reader (default 5 s). */
  firstReaderGraceMs?: number;
}

/** A running or finished process and its output. */
export class ManagedProcess {
  readonly output: OutputBuffer;
  pid = 0;
  /** Set once the process is over and its output complete. */
  exit: ExitInfo | undefined;
  finishedAt: number | undefined;
  private child: PipedChild | undefined;
  private pty: Pty | undefined;
  /** The pty of a process that took it as its controlling terminal itself (launch.spawnOnTerminal). */
  private terminal: DetachedPty | undefined;
  private stdinOpen = true;
  private readonly filter: CrunErrorFilter | undefined;
  private filterTimer: NodeJS.Timeout | undefined;
  private sent = new Set<number>();
  private outputPaused = false;
  private readonly firstHold: OutputHold;
  private readonly firstHoldTimer: NodeJS.Timeout;
  private readonly done: Promise<ExitInfo>;
  private resolveDone: (exit: ExitInfo) => void = () => {};

  private constructor(
    readonly id: string,
    readonly launch: Launch,
    output: OutputOptions,
    private readonly onDone: (p: ManagedProcess) => void,
  ) {
    this.output = new OutputBuffer(output.bufferBytes);
    // Until the first holding reader comes (the exec client opens Io right after CreateProcess), the
    // output is held from byte 0, so a fast process loses nothing in between; a reader that never
    // comes releases it after the grace time.
    this.firstHold = this.output.hold(0);
    this.firstHoldTimer = setTimeout(() => this.readerArrived(), output.firstReaderGraceMs ?? FIRST_READER_GRACE_MS);
    this.firstHoldTimer.unref();
    // A holding reader fell a whole buffer behind: stop reading the process's output, so that it blocks
    // on its full pipe or terminal instead of losing bytes that reader has not read.
    this.output.onPressure = (full) => this.pauseOutput(full);
    this.filter = launch.crunErrors ? new CrunErrorFilter() : undefined;
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
  }

  /** Starts `launch`; a failed start (missing command) is a process that has already exited. */
  static async start(id: string, launch: Launch, output: OutputOptions, onDone: (p: ManagedProcess) => void): Promise<ManagedProcess> {
    const proc = new ManagedProcess(id, launch, output, onDone);
    if (launch.failure) {
      proc.output.append(2, Buffer.from(`${launch.failure.message}\n`));
      proc.finish(launch.failure.exitCode, undefined);
    } else if (launch.terminal && launch.spawnOnTerminal) {
      await proc.startOnDetachedPty(launch.spawnOnTerminal);
    } else if (launch.terminal) {
      await proc.startPty();
    } else {
      await proc.startPipes();
    }
    return proc;
  }

  /** A holding reader has registered (or the grace time is over): the hold from the start is released. */
  readerArrived(): void {
    clearTimeout(this.firstHoldTimer);
    this.firstHold.release();
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** Resolves with the exit status; rejects when `signal` aborts first. */
  wait(signal?: AbortSignal): Promise<ExitInfo> {
    if (this.exit || !signal) return this.done;
    return new Promise((resolve, reject) => {
      const onAbort = (): void => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      void this.done.then((e) => {
        signal.removeEventListener('abort', onAbort);
        resolve(e);
      });
    });
  }

  /** Writes to stdin, waiting while the pipe is full. Dropped silently once stdin is closed or the process is gone. */
  async write(data: Buffer): Promise<void> {
    if (!this.stdinOpen || this.exit || data.length === 0) return;
    if (this.pty) {
      // node-pty's typings say string, but its socket writes Buffers as they are (no re-encoding).
      this.pty.write(data as unknown as string);
      return;
    }
    if (this.terminal) {
      this.terminal.master.write(data);
      return;
    }
    const stdin = this.child?.stdin;
    if (!stdin || stdin.destroyed) return;
    if (stdin.write(data)) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        stdin.off('drain', done);
        stdin.off('close', done);
        resolve();
      };
      stdin.on('drain', done);
      stdin.on('close', done);
    });
  }

  /** Closes stdin (EOF). A terminal has no separate stdin: it gets ^D, which ends input in canonical mode. */
  closeStdin(): void {
    if (!this.stdinOpen) return;
    this.stdinOpen = false;
    if (this.exit) return;
    if (this.pty) this.pty.write('\x04');
    else if (this.terminal) this.terminal.master.write('\x04');
    else if (this.child?.closeStdin) this.child.closeStdin();
    else this.child?.stdin?.end();
  }

  /** Sends a signal (to crun's inner process for workload processes). */
  async signal(name: NodeJS.Signals): Promise<void> {
    if (this.exit) throw new TtrpcError(Code.FAILED_PRECONDITION, `process ${this.id} is not running`);
    this.sent.add(constants.signals[name]);
    if (this.launch.kill) return this.launch.kill(name);
    try {
      process.kill(this.pid, name);
    } catch (err) {
      // It exited between our check and the kill: the exit status will tell.
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }

  /** Changes the terminal size (terminal processes only). */
  resize(rows: number, cols: number): void {
    if (!this.launch.terminal) throw new TtrpcError(Code.FAILED_PRECONDITION, `process ${this.id} has no terminal`);
    if (!(rows > 0 && cols > 0)) throw new TtrpcError(Code.INVALID_ARGUMENT, 'rows and cols must be positive');
    if (this.pty && !this.exit) this.pty.resize(cols, rows);
    if (this.terminal && !this.exit) this.terminal.resize(rows, cols);
  }

  /** The ListProcesses entry. */
  info(): ProcessInfo {
    return {
      processId: this.id,
      pid: this.pid,
      args: this.launch.displayArgs,
      terminal: this.launch.terminal,
      running: this.running,
      exitCode: this.exit?.exitCode ?? 0,
      signal: this.exit?.signal ?? '',
      inWorkload: this.launch.inWorkload,
    };
  }

  private credentials(): { uid?: number; gid?: number } {
    // Only switch ids when they differ: a non-root dev host (the agent outside a VM) could not anyway.
    const out: { uid?: number; gid?: number } = {};
    if (this.launch.uid !== undefined && this.launch.uid !== process.getuid?.()) out.uid = this.launch.uid;
    if (this.launch.gid !== undefined && this.launch.gid !== process.getgid?.()) out.gid = this.launch.gid;
    return out;
  }

  private async startPipes(): Promise<void> {
    const { file, args, env, cwd } = this.launch;
    const child = this.launch.spawn ? await this.launch.spawn() : spawn(file, args, { cwd, env, stdio: ['pipe', 'pipe', 'pipe'], ...this.credentials() });
    this.child = child;
    this.pid = child.pid ?? 0;
    // EPIPE after the process exited: nothing to do (the helper's child makes its stdin stream, if ever, with this).
    if (!(child instanceof HelperChild)) child.stdin!.on('error', () => undefined);
    child.stdout!.on('data', (d: Buffer) => this.emit(1, d));
    child.stderr!.on('data', (d: Buffer) => this.emit(2, d));
    let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    child.on('error', (err: NodeJS.ErrnoException) => {
      // Spawn itself failed (the lookup passed, so: permission, a vanished file, bad credentials).
      if (exited) return;
      exited = { code: err.code === 'ENOENT' ? 127 : 126, signal: null };
      this.emit(2, Buffer.from(`exec: "${this.launch.displayArgs[0]}": ${err.message}\n`));
      this.finish(exited.code!, undefined);
    });
    let grace: NodeJS.Timeout | undefined;
    child.on('exit', (code: number | null, signal: NodeJS.Signals | null) => {
      exited = { code, signal };
      grace = setTimeout(() => {
        // Output paused for a slow reader is still wanted: the pipes are not closed under it.
        if (this.outputPaused) return void grace?.refresh();
        child.stdout?.destroy();
        child.stderr?.destroy();
        this.finishFromStatus(code, signal ? constants.signals[signal] : 0);
      }, PIPE_CLOSE_GRACE_MS);
      grace.unref();
    });
    child.on('close', (code: number | null, signal: NodeJS.Signals | null) => {
      if (grace) clearTimeout(grace);
      this.finishFromStatus(code, signal ? constants.signals[signal] : 0);
    });
  }

  private async startPty(): Promise<void> {
    const { spawn: ptySpawn } = await loadPty();
    const { file, args, env, cwd, rows, cols } = this.launch;
    const pty = ptySpawn(file, args, { name: env.TERM ?? 'xterm', rows, cols, cwd, env, encoding: null, ...this.credentials() });
    this.pty = pty;
    this.pid = pty.pid;
    pty.onData((d: string | Buffer) => this.emit(1, typeof d === 'string' ? Buffer.from(d) : d));
    pty.onExit(({ exitCode, signal }) => this.finishFromStatus(exitCode, signal ?? 0));
  }

  /**
   * A terminal the process makes its controlling one itself: the agent holds the master and a copy
   * of the slave until the process exits (the exec helper's child opens the slave by path, after
   * the start is confirmed; without the agent's copy, the master would read as ended before that).
   * Then the output ends when the master reads EIO (nobody holds the slave any more), or after a
   * grace time when a background process still does.
   */
  private async startOnDetachedPty(spawnOnTerminal: NonNullable<Launch['spawnOnTerminal']>): Promise<void> {
    const tty = await openDetachedPty(this.launch.rows, this.launch.cols);
    this.terminal = tty;
    let child: PipedChild;
    try {
      child = await spawnOnTerminal({ path: tty.path, fd: tty.slave });
    } catch (err) {
      tty.closeSlave();
      tty.master.destroy();
      throw err;
    }
    this.child = child;
    this.pid = child.pid ?? 0;
    let exited: { code: number | null; signal: number } | undefined;
    let outputEnded = false;
    let grace: NodeJS.Timeout | undefined;
    const done = (): void => {
      if (grace) clearTimeout(grace);
      tty.master.destroy();
      if (exited) this.finishFromStatus(exited.code, exited.signal);
    };
    tty.master.on('data', (d: Buffer) => this.emit(1, d));
    // EIO: every slave is closed. Any other read error ends the output the same way.
    tty.master.on('error', () => {
      outputEnded = true;
      if (exited) done();
    });
    tty.master.on('end', () => {
      outputEnded = true;
      if (exited) done();
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (exited) return;
      exited = { code: err.code === 'ENOENT' ? 127 : 126, signal: 0 };
      this.emit(1, Buffer.from(`exec: "${this.launch.displayArgs[0]}": ${err.message}\r\n`));
      tty.closeSlave();
      done();
    });
    child.on('exit', (code: number | null, signal: NodeJS.Signals | null) => {
      if (exited) return;
      exited = { code, signal: signal ? constants.signals[signal] : 0 };
      tty.closeSlave();
      if (outputEnded) return done();
      grace = setTimeout(() => {
        // Output paused for a slow reader is still wanted: the terminal is not closed under it.
        if (this.outputPaused) return void grace?.refresh();
        done();
      }, PIPE_CLOSE_GRACE_MS);
      grace.unref();
    });
  }

  private pauseOutput(pause: boolean): void {
    this.outputPaused = pause;
    if (this.terminal) {
      if (pause) this.terminal.master.pause();
      else this.terminal.master.resume();
    }
    const sources = [this.child?.stdout, this.child?.stderr];
    for (const s of sources) {
      if (pause) s?.pause();
      else s?.resume();
    }
    if (pause) this.pty?.pause();
    else this.pty?.resume();
  }

  private finishFromStatus(code: number | null, signal: number): void {
    if (signal > 0) this.finish(128 + signal, signalName(signal));
    else this.finish(code ?? 0, undefined);
  }

  private emit(fd: number, data: Buffer): void {
    if (this.exit) return;
    if (!this.filter) return this.output.append(fd, data);
    for (const p of this.filter.push(fd, data)) this.output.append(p.fd, p.data);
    if (this.filter.holding && !this.filterTimer) {
      this.filterTimer = setTimeout(() => {
        for (const p of this.filter!.flush()) this.output.append(p.fd, p.data);
      }, CRUN_HOLD_MS);
      this.filterTimer.unref();
    }
  }

  private finish(code: number, signal: string | undefined): void {
    if (this.exit) return;
    if (this.filterTimer) clearTimeout(this.filterTimer);
    let exitCode = code;
    if (this.filter) {
      const r = this.filter.finish(code);
      for (const p of r.pieces) this.output.append(p.fd, p.data);
      exitCode = r.exitCode;
    }
    // crun exec reports a signalled inner process as 128+n; name the signal when we sent it.
    let sig = signal;
    if (!sig && exitCode > 128 && this.sent.has(exitCode - 128)) sig = signalName(exitCode - 128);
    this.exit = sig ? { exitCode, signal: sig } : { exitCode };
    this.finishedAt = Date.now();
    this.stdinOpen = false;
    this.output.close();
    this.launch.onExit?.();
    this.resolveDone(this.exit);
    this.onDone(this);
  }
}
