/**
 * A QMP (QEMU Machine Protocol) client over a unix socket. The daemon keeps one per running
 * QEMU: it sends commands (stop, cont, quit, migrate, ...), listens for events (SHUTDOWN,
 * STOP, RESUME, ...) and learns through `closed` that the VMM went away.
 *
 * Protocol notes (qmp-spec.rst, verified on QEMU 7.2 here): the server greets first, stays in
 * capabilities-negotiation mode until `qmp_capabilities`, executes commands in order, echoes
 * the `id` we send, and may interleave events between a command and its reply.
 */
import { createConnection, type Socket } from 'node:net';
import { QmpLineSplitter, QmpLineTooLongError } from './qmp-framing.js';
import {
  QmpCommandError,
  QmpError,
  QmpParseError,
  parseQmpLine,
  type QmpEvent,
  type QmpGreeting,
  type QmpMessage,
} from './qmp-protocol.js';

export { QmpCommandError, QmpError, type QmpEvent, type QmpFailureKind, type QmpGreeting } from './qmp-protocol.js';

export interface QmpConnectOptions {
  /** Budget for connect + greeting + `qmp_capabilities`. Default 5 s. */
  timeoutMs?: number;
  /** Default per-command timeout for {@link QmpClient.execute}. Default 30 s. */
  commandTimeoutMs?: number;
  /** Longest accepted line; a longer one breaks the connection. Default 1 MiB. */
  maxLineBytes?: number;
  /** In-band commands sent before waiting for replies; qmp-spec says at most 8. Default 8. */
  maxInFlight?: number;
}

export interface QmpExecuteOptions {
  /** Milliseconds until the promise rejects with kind `timeout`; includes time queued behind other commands. */
  timeoutMs?: number;
}

/** Why the connection ended. `error` is absent for a clean close (by us, or QEMU exiting). */
export interface QmpCloseInfo {
  byClient: boolean;
  error?: QmpError;
}

export interface QmpStatus {
  /** `running`, `paused`, `prelaunch`, `inmigrate`, `postmigrate`, `shutdown`, ... */
  status: string;
  running: boolean;
}

interface PendingCommand {
  id: number;
  command: string;
  line: string;
  resolve: (value: unknown) => void;
  reject: (err: QmpError) => void;
  timer: NodeJS.Timeout | undefined;
  /** Timed out: the caller has its rejection, but QEMU may still answer (and still holds a slot). */
  settled: boolean;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;
const DEFAULT_MAX_IN_FLIGHT = 8;

export class QmpClient {
  /** Resolves once when the connection ends (never rejects). */
  readonly closed: Promise<QmpCloseInfo>;
  private resolveClosed!: (info: QmpCloseInfo) => void;
  private closeInfo: QmpCloseInfo | undefined;
  private greetingValue: QmpGreeting | undefined;
  private greetingWaiter: { resolve: (g: QmpGreeting) => void; reject: (e: QmpError) => void } | undefined;
  private connected = false;
  /** First socket error; reported when the socket then closes. */
  private socketError: QmpError | undefined;
  private nextId = 1;
  private readonly inFlight = new Map<number, PendingCommand>();
  private readonly queue: PendingCommand[] = [];
  private readonly eventListeners = new Set<(ev: QmpEvent) => void>();
  private readonly splitter: QmpLineSplitter;
  private readonly commandTimeoutMs: number;
  private readonly maxInFlight: number;

  private constructor(
    readonly socketPath: string,
    private readonly socket: Socket,
    options: QmpConnectOptions,
  ) {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.splitter = new QmpLineSplitter(options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES);
    this.commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.maxInFlight = Math.max(1, options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT);
    socket.on('connect', () => (this.connected = true));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => this.onSocketError(err));
    socket.on('close', () => this.finish(this.socketError, false));
  }

  /**
   * Connects, waits for the greeting and leaves capabilities mode. Rejects with a QmpError of
   * kind `refused` (no socket / nobody listening), `timeout`, `protocol` (not a QMP peer) or
   * `closed`; on rejection nothing stays open.
   */
  static async connect(socketPath: string, options: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const client = new QmpClient(socketPath, createConnection({ path: socketPath }), options);
    const timer = setTimeout(() => {
      const phase = !client.connected ? 'connecting' : client.greetingValue ? 'negotiating capabilities' : 'waiting for the greeting';
      client.fail(new QmpError('timeout', socketPath, `timed out after ${timeoutMs} ms ${phase}`));
    }, timeoutMs);
    try {
      await new Promise<QmpGreeting>((resolve, reject) => {
        if (client.closeInfo) return reject(client.closedError());
        client.greetingWaiter = { resolve, reject };
      });
      await client.execute('qmp_capabilities', undefined, { timeoutMs });
      return client;
    } catch (err) {
      client.fail(err instanceof QmpError ? err : new QmpError('io', socketPath, String(err), { cause: err }));
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The server's greeting (QEMU version, capabilities). */
  get greeting(): QmpGreeting {
    if (!this.greetingValue) throw new QmpError('protocol', this.socketPath, 'no greeting received yet');
    return this.greetingValue;
  }

  get isClosed(): boolean {
    return this.closeInfo !== undefined;
  }

  /**
   * Runs one command and resolves with its `return` value. `T` is what the caller expects QEMU
   * to return; it is not checked here (validate what you depend on, as queryStatus does).
   * Rejects with QmpCommandError for an error reply, QmpError `timeout` / `closed` otherwise.
   */
  execute<T = unknown>(command: string, args?: object, options: QmpExecuteOptions = {}): Promise<T> {
    if (this.closeInfo) return Promise.reject(this.closedError(command));
    const id = this.nextId++;
    const message = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
    const timeoutMs = options.timeoutMs ?? this.commandTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const pending: PendingCommand = {
        id,
        command,
        line: `${JSON.stringify(message)}\n`,
        resolve: (value) => resolve(value as T),
        reject,
        timer: undefined,
        settled: false,
      };
      pending.timer = setTimeout(() => this.timeOut(pending, timeoutMs), timeoutMs);
      this.queue.push(pending);
      this.pump();
    });
  }

  /** `query-status`, checked: rejects with kind `protocol` if QEMU's answer lacks the fields. */
  async queryStatus(options: QmpExecuteOptions = {}): Promise<QmpStatus> {
    const value = await this.execute<unknown>('query-status', undefined, options);
    if (typeof value === 'object' && value !== null) {
      const { status, running } = value as { status?: unknown; running?: unknown };
      if (typeof status === 'string' && typeof running === 'boolean') return { status, running };
    }
    throw new QmpError('protocol', this.socketPath, `unexpected query-status reply ${JSON.stringify(value)}`, { command: 'query-status' });
  }

  /** Subscribes to asynchronous events; returns a function that unsubscribes. */
  on(name: 'event', listener: (ev: QmpEvent) => void): () => void {
    if (name !== 'event') throw new TypeError(`unknown QmpClient event ${String(name)}`);
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  /** Calls `cb` once when the connection ends (at once, asynchronously, if it already has). */
  onClose(cb: (info: QmpCloseInfo) => void): void {
    void this.closed.then(cb);
  }

  /** Closes the connection (QEMU keeps running); pending commands reject with kind `closed`. */
  async close(): Promise<void> {
    this.finish(undefined, true);
    await this.closed;
  }

  private pump(): void {
    while (this.inFlight.size < this.maxInFlight && this.queue.length > 0 && !this.closeInfo) {
      const next = this.queue.shift()!;
      this.inFlight.set(next.id, next);
      this.socket.write(next.line);
    }
  }

  private timeOut(pending: PendingCommand, timeoutMs: number): void {
    pending.settled = true;
    const queued = this.queue.indexOf(pending);
    // Not sent yet: drop it. Sent: keep its slot until QEMU answers, since QEMU is still busy with it.
    if (queued !== -1) this.queue.splice(queued, 1);
    pending.reject(new QmpError('timeout', this.socketPath, `no reply within ${timeoutMs} ms`, { command: pending.command }));
  }

  private onData(chunk: Buffer): void {
    if (this.closeInfo) return;
    let lines: string[];
    try {
      lines = this.splitter.push(chunk);
    } catch (err) {
      const message = err instanceof QmpLineTooLongError ? err.message : String(err);
      return this.fail(new QmpError('protocol', this.socketPath, message, { cause: err }));
    }
    for (const line of lines) {
      let message: QmpMessage;
      try {
        message = parseQmpLine(line);
      } catch (err) {
        const text = err instanceof QmpParseError ? err.message : String(err);
        return this.fail(new QmpError('protocol', this.socketPath, `peer is not speaking QMP: ${text}`, { cause: err }));
      }
      this.dispatch(message);
      if (this.closeInfo) return;
    }
  }

  private dispatch(message: QmpMessage): void {
    if (message.kind === 'greeting') {
      // A repeated greeting is harmless; only the first one counts.
      if (this.greetingValue) return;
      this.greetingValue = message.greeting;
      this.greetingWaiter?.resolve(message.greeting);
      this.greetingWaiter = undefined;
      return;
    }
    if (!this.greetingValue) {
      return this.fail(new QmpError('protocol', this.socketPath, `expected the QMP greeting first, got a ${message.kind} message`));
    }
    if (message.kind === 'event') {
      for (const listener of [...this.eventListeners]) {
        try {
          listener(message.event);
        } catch (err) {
          // A listener bug must not corrupt the reader's state; surface it like an EventEmitter would.
          process.nextTick(() => {
            throw err;
          });
        }
      }
      return;
    }
    // Replies to commands that already timed out, or id-less replies (QEMU sends those only
    // for requests it could not parse, which JSON.stringify never produces), are dropped.
    const pending = typeof message.id === 'number' ? this.inFlight.get(message.id) : undefined;
    if (!pending) return;
    this.inFlight.delete(pending.id);
    clearTimeout(pending.timer);
    if (!pending.settled) {
      pending.settled = true;
      if (message.kind === 'return') pending.resolve(message.value);
      else pending.reject(new QmpCommandError(this.socketPath, pending.command, message.errorClass, message.desc));
    }
    this.pump();
  }

  private onSocketError(err: NodeJS.ErrnoException): void {
    if (this.socketError) return;
    // QEMU exiting often resets the connection instead of closing it (seen after `quit` when it
    // had unread input): that is the peer going away, reported as a plain close, not an I/O error.
    if (this.connected && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) return;
    const refused = !this.connected && (err.code === 'ENOENT' || err.code === 'ECONNREFUSED');
    const text = refused ? `cannot connect (${err.code}): no QEMU is listening` : `socket error: ${err.message}`;
    this.socketError = new QmpError(refused ? 'refused' : 'io', this.socketPath, text, { cause: err });
  }

  /** Breaks the connection because of `error`; everything pending rejects with it. */
  private fail(error: QmpError): void {
    this.finish(error, false);
  }

  private closedError(command?: string): QmpError {
    const info = this.closeInfo;
    if (info?.error) return info.error;
    const why = info?.byClient ? 'the connection was closed by the client' : 'the connection was closed by QEMU';
    return new QmpError('closed', this.socketPath, why, command === undefined ? {} : { command });
  }

  /** Idempotent teardown: records why, destroys the socket, rejects what is pending, fires `closed`. */
  private finish(error: QmpError | undefined, byClient: boolean): void {
    if (this.closeInfo) return;
    this.closeInfo = error ? { byClient, error } : { byClient };
    this.socket.destroy();
    const waiter = this.greetingWaiter;
    this.greetingWaiter = undefined;
    waiter?.reject(this.closedError());
    const pending = [...this.inFlight.values(), ...this.queue];
    this.inFlight.clear();
    this.queue.length = 0;
    for (const p of pending) {
      clearTimeout(p.timer);
      if (!p.settled) {
        p.settled = true;
        p.reject(error ?? this.closedError(p.command));
      }
    }
    this.resolveClosed(this.closeInfo);
  }
}
