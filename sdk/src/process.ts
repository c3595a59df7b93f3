/**
 * Exec and attach: a process in a guest as Node streams, over the daemon's WebSocket routes
 * (one ProcessInput / ProcessOutput per text message, proto3 JSON, bytes base64). Output is read at
 * the caller's pace: while stdout or stderr is full the socket is paused, which in turn pauses the
 * process in the guest.
 */
import { PassThrough, Writable } from 'node:stream';
import type { WebSocket } from 'ws';
import { errorFromBody } from './errors.js';
import type { ProcessInput, ProcessOutput } from './types.js';

export interface ProcessExit {
  exitCode: number;
  /** The signal that ended it, e.g. SIGKILL. */
  signal?: string;
}

export class GuestProcess {
  /** Bytes for the process's stdin; end() closes its stdin. */
  readonly stdin: Writable;
  readonly stdout = new PassThrough();
  /** Empty with a tty (the terminal merges both into stdout). */
  readonly stderr = new PassThrough();
  /** Resolves when the process exits; rejects with the daemon's error (e.g. VmNotFoundError) or a lost connection. */
  readonly exited: Promise<ProcessExit>;
  /** The process's id in the guest, once it runs. */
  processId: string | undefined;

  constructor(private readonly socket: WebSocket) {
    this.stdin = new Writable({
      write: (chunk: Buffer, _encoding, done) => this.send({ stdin: chunk.toString('base64') }, done),
      final: (done) => this.send({ closeStdin: true }, done),
    });
    let settle!: { resolve: (e: ProcessExit) => void; reject: (e: Error) => void };
    this.exited = new Promise<ProcessExit>((resolve, reject) => (settle = { resolve, reject }));
    let ended = false;
    const finish = (err?: Error, exit?: ProcessExit): void => {
      if (ended) return;
      ended = true;
      this.stdout.end();
      this.stderr.end();
      if (err) settle.reject(err);
      else settle.resolve(exit!);
      if (socket.readyState === socket.OPEN) socket.close(1000);
    };
    for (const out of [this.stdout, this.stderr]) out.on('drain', () => socket.isPaused && this.stdout.writableNeedDrain === false && this.stderr.writableNeedDrain === false && socket.resume());
    socket.on('message', (raw: Buffer) => {
      let message: ProcessOutput & { error?: unknown };
      try {
        message = JSON.parse(raw.toString('utf8')) as ProcessOutput & { error?: unknown };
      } catch {
        finish(errorFromBody(0, { error: { code: 'HC_INTERNAL', message: 'the daemon sent a process message that is not JSON' } }));
        return;
      }
      if (message.error) return finish(errorFromBody(0, message));
      if (message.processId) this.processId = message.processId;
      if (message.data) {
        const target = message.fd === 2 ? this.stderr : this.stdout;
        if (!target.write(Buffer.from(message.data, 'base64'))) socket.pause();
      }
      if (message.exited) finish(undefined, { exitCode: message.exitCode ?? 0, ...(message.signal ? { signal: message.signal } : {}) });
    });
    socket.on('error', (err) => finish(err));
    socket.on('close', (code, reason) => finish(new Error(`the process stream closed before the process exited (WebSocket ${code}${reason.length ? `: ${reason.toString()}` : ''})`)));
    // The socket comes paused (see Connection.openWebSocket): the handlers are on now.
    socket.resume();
  }

  /** Resizes the process's terminal (tty only). */
  resize(rows: number, cols: number): void {
    this.send({ rows, cols });
  }

  /** Detaches: ends the stream; the process goes on in the guest, and `exited` rejects. */
  close(): void {
    this.socket.close(1000);
  }

  /** Sends a signal, e.g. SIGINT. */
  kill(signal = 'SIGTERM'): void {
    this.send({ signal });
  }

  private send(input: Omit<ProcessInput, 'stdin'> & { stdin?: string }, done?: (err?: Error | null) => void): void {
    if (this.socket.readyState !== this.socket.OPEN) {
      done?.(new Error('the process stream is closed'));
      return;
    }
    this.socket.send(JSON.stringify(input), (err) => done?.(err ?? null));
  }
}
