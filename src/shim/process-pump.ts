/**
 * Copies one guest process's stdio between the agent (its Io stream) and containerd's FIFOs:
 * output to the stdout/stderr FIFOs at the pace their reader takes it (the agent holds the rest and
 * then pauses the process, so nothing is lost and nothing piles up here), the stdin FIFO to the
 * process until containerd closes it (CloseIO). The pump ends once the process has exited and all
 * its output is written; only then are the FIFOs closed, so containerd's reader sees every byte
 * before end of file, and only then is the exit reported.
 */
import type net from 'node:net';
import type { ExitStatus, ProcessIo } from '../core/agent.js';
import type { Logger } from '../core/ports.js';
import type { ProcessStdio } from '../core/pod.js';
import { openFifo, openFifoIfRead } from './fifo.js';

/**
 * How long output written just before the exit is given to its reader. containerd's client (ctr
 * run) closes its end of the FIFOs as soon as Wait returns, and drops what it has not read by then;
 * a guest's last output arrives right before its exit status, so it is given a moment.
 */
const SETTLE_MS = 500;

/** How the pump ended: the exit status, or why the stream broke off before it came. */
export type PumpEnd = { kind: 'exit'; status: ExitStatus } | { kind: 'lost'; reason: string };

export class ProcessPump {
  private stdin: net.Socket | undefined;
  private readonly outputs = new Map<1 | 2, net.Socket>();
  private stdinClosed = false;
  private io: ProcessIo | undefined;
  private lastWriteAt = 0;
  /** stderr goes to stdout (a terminal, or no stderr FIFO). */
  private mergeStderr = true;
  /** Offset just past the output written so far (where a new Io stream resumes). */
  offset = 0;
  /** Set by `run`. */
  done: Promise<PumpEnd> | undefined;

  private constructor(private readonly logger: Logger) {}

  /**
   * Opens the process's FIFOs (before the process starts, so a bad path fails first and no output
   * can be missed); `run` then starts copying.
   */
  static async open(stdio: ProcessStdio, logger: Logger, options: { resumed?: boolean } = {}): Promise<ProcessPump> {
    const pump = new ProcessPump(logger);
    pump.mergeStderr = stdio.terminal || !stdio.stderr;
    // A process followed again after a daemon restart: containerd's reader of an output may have
    // gone (it saw end of file when the old daemon died); its output is then dropped, not queued
    // in a FIFO nobody reads (which would stop the process once full).
    const output = async (fd: 1 | 2, path: string): Promise<void> => {
      const s = options.resumed ? await openFifoIfRead(path) : await openFifo(path, 'write');
      if (s) pump.outputs.set(fd, s);
    };
    try {
      if (stdio.stdout) await output(1, stdio.stdout);
      if (stdio.stderr && !stdio.terminal) await output(2, stdio.stderr);
      if (stdio.stdin) pump.stdin = await openFifo(stdio.stdin, 'read');
      return pump;
    } catch (err) {
      pump.closeAll();
      throw err;
    }
  }

  /** Starts copying from the process's Io (which resumes at output offset `fromOffset`). */
  run(io: ProcessIo, fromOffset = 0): Promise<PumpEnd> {
    if (this.io) throw new Error('the pump runs already');
    this.io = io;
    this.offset = fromOffset;
    if (this.stdin) this.attachStdin(this.stdin);
    this.done = this.copy(io);
    return this.done;
  }

  /** containerd closed the process's stdin (CloseIO): the process reads end of file. */
  closeStdin(): void {
    if (this.stdinClosed) return;
    this.stdinClosed = true;
    this.stdin?.destroy();
    void this.io?.closeStdin().catch((err: unknown) => this.logger.debug({ err: String(err) }, 'closing stdin of a process that is gone'));
  }

  /** Stops copying (the process keeps running in the guest); the FIFOs are closed. */
  detach(): void {
    this.io?.close();
    this.closeAll();
  }

  private attachStdin(stdin: net.Socket): void {
    this.stdin = stdin;
    stdin.on('data', (chunk: Buffer) => {
      stdin.pause();
      this.io!.write(chunk).then(
        () => stdin.resume(),
        () => stdin.destroy(),
      );
    });
  }

  private async copy(io: ProcessIo): Promise<PumpEnd> {
    try {
      for await (const event of io) {
        if (event.kind === 'output') {
          await this.write(event.fd, event.data);
          this.offset = event.offset + event.data.length;
        } else {
          await this.finishOutputs();
          return { kind: 'exit', status: event.status };
        }
      }
      return { kind: 'lost', reason: 'the process stream ended without an exit status' };
    } catch (err) {
      return { kind: 'lost', reason: err instanceof Error ? err.message : String(err) };
    } finally {
      this.closeAll();
    }
  }

  /** Writes to the process's stdout or stderr FIFO (a terminal's output all goes to stdout), waiting for room. */
  private async write(fd: 1 | 2, data: Uint8Array): Promise<void> {
    const out = this.outputs.get(fd) ?? (fd === 2 && this.mergeStderr ? this.outputs.get(1) : undefined);
    if (!out || out.destroyed) return;
    this.lastWriteAt = Date.now();
    if (out.write(data)) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        out.off('drain', done);
        out.off('close', done);
        resolve();
      };
      out.on('drain', done);
      out.on('close', done);
    });
  }

  private async finishOutputs(): Promise<void> {
    const since = Date.now() - this.lastWriteAt;
    if (since < SETTLE_MS) await new Promise((r) => setTimeout(r, SETTLE_MS - since));
    await Promise.all(
      [...this.outputs.values()].map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.destroyed) return resolve();
            s.end(() => resolve());
            s.once('close', () => resolve());
          }),
      ),
    );
  }

  private closeAll(): void {
    for (const s of this.outputs.values()) s.destroy();
    this.outputs.clear();
    this.stdin?.destroy();
  }
}
