/**
 * Client side of a streaming call, following ttrpc's stream rules (PROTOCOL.md "Streaming", client.go
 * `clientStream`):
 * - the Request opens the stream with flag remote-open when the client will stream, else remote-closed
 *   (then the request payload is the one input message);
 * - `send` = Data frame, flags 0; `closeSend` = Data with remote-closed|no-data and no bytes;
 * - the server streams Data frames; the last one carries remote-closed (with no-data when empty). A Response
 *   ends the stream too: non-OK status → the iteration throws it; OK → its payload is the last message
 *   (always for a non-streaming server, i.e. client streaming; only when non-empty otherwise).
 * ttrpc has no cancel frame: `cancel()` and local deadlines only stop waiting here; the server learns through
 * the timeout_nano it was sent, or when the connection closes.
 */
import { Code, TtrpcError } from './errors.js';
import { Flags, MessageType, type Frame } from './framing.js';
import { decodeResponse } from './messages.js';
import { DEFAULT_STREAM_BUFFER_BYTES, MessageQueue } from './queue.js';

/** Which sides stream (ttrpc StreamDesc). */
export interface StreamDesc {
  /** The client sends Data frames (client streaming or bidi). */
  streamingClient: boolean;
  /** The server sends Data frames (server streaming or bidi). */
  streamingServer: boolean;
}

/** Receives the frames of one stream id from the client's dispatcher. */
export interface StreamSink {
  onFrame(frame: Frame): void;
  fail(err: TtrpcError): void;
}

/** What a ClientStream needs from its client. */
export interface StreamHost {
  register(id: number, sink: StreamSink): void;
  unregister(id: number): void;
  send(id: number, type: number, flags: number, data?: Uint8Array): void;
  drained(): Promise<void>;
}

/** Error for a local deadline, worded like Go's context.DeadlineExceeded. */
export function deadlineError(): TtrpcError {
  return new TtrpcError(Code.DEADLINE_EXCEEDED, 'context deadline exceeded');
}

/** Error for a local cancellation, worded like Go's context.Canceled. */
export function canceledError(cause?: unknown): TtrpcError {
  return new TtrpcError(Code.CANCELED, 'context canceled', { cause });
}

/** Largest delay setTimeout honours; longer ones would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Arms the local deadline and AbortSignal of a call; `onStop` gets the error. Returns the disarm function.
 */
export function watchCall(opts: { timeoutMs?: number; signal?: AbortSignal }, onStop: (err: TtrpcError) => void): () => void {
  let timer: NodeJS.Timeout | undefined;
  if (opts.timeoutMs !== undefined && opts.timeoutMs <= MAX_TIMER_MS) {
    timer = setTimeout(() => onStop(deadlineError()), opts.timeoutMs);
  }
  const signal = opts.signal;
  const onAbort = (): void => onStop(canceledError(signal?.reason));
  signal?.addEventListener('abort', onAbort, { once: true });
  return () => {
    if (timer) clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  };
}

/** Handle of an open stream: send, closeSend, and async iteration over the server's messages. */
export class ClientStream implements AsyncIterable<Uint8Array> {
  private readonly queue: MessageQueue<Uint8Array>;
  private localClosed: boolean;
  private endError: TtrpcError | null = null;
  private finished = false;
  private disarm: () => void = () => {};

  /** Created by `TtrpcClient.stream`; the Request frame is sent by the client right after. */
  constructor(
    private readonly host: StreamHost,
    /** The stream id (odd). */
    readonly id: number,
    /** Which sides stream. */
    readonly desc: StreamDesc,
    /** Bound of the server's unread messages; see {@link MessageQueue}. */
    maxBufferedBytes: number = DEFAULT_STREAM_BUFFER_BYTES,
  ) {
    this.queue = new MessageQueue<Uint8Array>(maxBufferedBytes);
    this.localClosed = !desc.streamingClient;
    host.register(id, { onFrame: (f) => this.onFrame(f), fail: (e) => this.finish(e) });
  }

  /** Sends one message (Data frame). Resolves when it was handed to the transport. */
  async send(payload: Uint8Array): Promise<void> {
    this.assertCanSend();
    this.host.send(this.id, MessageType.Data, 0, payload);
    await this.host.drained();
  }

  /**
   * Tells the server no more messages follow (Data with remote-closed|no-data). Idempotent, and a no-op once
   * the server has cleanly finished the stream (so it is safe in a `finally`).
   */
  async closeSend(): Promise<void> {
    if (this.localClosed && this.desc.streamingClient) return;
    if (this.finished && !this.endError && this.desc.streamingClient) return;
    this.assertCanSend();
    this.localClosed = true;
    this.host.send(this.id, MessageType.Data, Flags.RemoteClosed | Flags.NoData);
    await this.host.drained();
  }

  /** Next message from the server; `undefined` at the end; rejects with the stream's error. */
  recv(): Promise<Uint8Array | undefined> {
    return this.queue.next();
  }

  /** Stops the stream locally with CANCELED (see the module comment: the server is not told). */
  cancel(reason?: unknown): void {
    this.finish(canceledError(reason));
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this.queue[Symbol.asyncIterator]();
  }

  /** Installs the disarm function of the call's timer/signal watch (cleared when the stream ends). */
  setDisarm(disarm: () => void): void {
    if (this.finished) disarm();
    else this.disarm = disarm;
  }

  private assertCanSend(): void {
    if (this.endError) throw this.endError;
    if (!this.desc.streamingClient) throw new TtrpcError(Code.FAILED_PRECONDITION, 'ttrpc: cannot send data from non-streaming client');
    if (this.localClosed || this.finished) throw new TtrpcError(Code.FAILED_PRECONDITION, 'ttrpc: stream closed');
  }

  private onFrame(frame: Frame): void {
    if (frame.type === MessageType.Response) {
      let res;
      try {
        res = decodeResponse(frame.data);
      } catch (err) {
        this.finish(new TtrpcError(Code.INTERNAL, `ttrpc: malformed response: ${(err as Error).message}`));
        return;
      }
      if (res.status && res.status.code !== Code.OK) {
        this.finish(new TtrpcError(res.status.code, res.status.message, { details: res.status.details }));
        return;
      }
      if (!this.desc.streamingServer || res.payload.length > 0) {
        if (!this.queue.push(res.payload)) return this.overflow();
      }
      this.finish(null);
    } else if (frame.type === MessageType.Data) {
      if (!this.desc.streamingServer) {
        this.finish(new TtrpcError(Code.INTERNAL, 'ttrpc: received data from non-streaming server: protocol error'));
        return;
      }
      // A frame's data may be a view into a large socket chunk; a copy lets that chunk be freed.
      if ((frame.flags & Flags.NoData) === 0 && !this.queue.push(Buffer.from(frame.data))) return this.overflow();
      if ((frame.flags & Flags.RemoteClosed) !== 0) this.finish(null);
    }
    // Other types (a Request from the server) are ignored, as Go ignores unknown types.
  }

  /** The server ran too far ahead of the reader: drop what it sent and fail the stream. */
  private overflow(): void {
    if (this.finished) return;
    this.finish(this.queue.overflow(`the server of stream ${this.id}`));
  }

  /** Ends the stream once: null = clean end, else the error the reader gets after buffered messages. */
  private finish(err: TtrpcError | null): void {
    if (this.finished) return;
    this.finished = true;
    this.host.unregister(this.id);
    this.disarm();
    if (err) {
      this.endError = err;
      this.queue.fail(err);
    } else {
      this.queue.end();
    }
  }
}
