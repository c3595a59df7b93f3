/**
 * TTRPC client: unary calls and streams multiplexed on one connection by stream id (odd, from 1, +2 per
 * call, never reused — containerd/ttrpc client.go `createStream`).
 */
import { ClientStream, type StreamDesc, type StreamHost, type StreamSink, watchCall } from './client-stream.js';
import { FrameConnection } from './connection.js';
import { Code, ConnectionClosedError, TtrpcError } from './errors.js';
import { Flags, MESSAGE_LENGTH_MAX, MessageType, STREAM_ID_MAX, type Frame, type FrameHeader, type FrameTooLargeError } from './framing.js';
import { decodeResponse, encodeRequest, type KeyValue } from './messages.js';
import { connectUnix, type Transport } from './transport.js';

/** Request metadata; a key with several values becomes several KeyValue entries (Go's MD). */
export type Metadata = Record<string, string | readonly string[]>;

/** Options of one call or stream. */
export interface CallOptions {
  /** Deadline: sent as timeout_nano (the server aborts its handler) and enforced locally (DEADLINE_EXCEEDED). */
  timeoutMs?: number;
  /** Aborting rejects the call locally with CANCELED (ttrpc cannot tell the server). */
  signal?: AbortSignal;
  metadata?: Metadata;
}

/** Options of {@link TtrpcClient.stream}. */
export interface StreamOptions extends CallOptions, StreamDesc {
  /** Payload of the Request frame: the single input message of a server-streaming call. */
  payload?: Uint8Array;
  /**
   * Most bytes of server messages held for the reader (default 16 MiB); a server that sends more fails the
   * stream with RESOURCE_EXHAUSTED instead of growing this process's memory (see queue.ts).
   */
  maxBufferedBytes?: number;
}

/** TTRPC client over any {@link Transport}. */
export class TtrpcClient {
  private readonly conn: FrameConnection;
  private readonly streams = new Map<number, StreamSink>();
  private nextId = 1;
  private readonly closedPromise: Promise<ConnectionClosedError>;
  private resolveClosed: (reason: ConnectionClosedError) => void = () => {};
  private readonly host: StreamHost;

  /** Starts reading from `transport` at once. */
  constructor(transport: Transport) {
    this.closedPromise = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.conn = new FrameConnection(transport, {
      onFrame: (frame) => this.dispatch(frame),
      onOversize: (header, error) => this.onOversize(header, error),
      onClose: (reason) => this.onClose(reason),
    });
    this.host = {
      register: (id, sink) => this.streams.set(id, sink),
      unregister: (id) => this.streams.delete(id),
      send: (id, type, flags, data) => this.conn.send(id, type, flags, data),
      drained: () => this.conn.drained(),
    };
  }

  /** Connects to a ttrpc unix socket, e.g. `containerd.sock.ttrpc` or a shim's socket. */
  static async connect(path: string): Promise<TtrpcClient> {
    return new TtrpcClient(await connectUnix(path));
  }

  /** True once the connection is closed. */
  get closed(): boolean {
    return this.conn.closed !== null;
  }

  /** Resolves (never rejects) with the reason when the connection closes, for reconnect logic. */
  whenClosed(): Promise<ConnectionClosedError> {
    return this.closedPromise;
  }

  /** Number of calls/streams waiting for the server (for diagnostics and tests). */
  get pending(): number {
    return this.streams.size;
  }

  /**
   * Unary call: `service` is the full proto service name (`containerd.task.v2.Task`), `method` the bare name.
   * Resolves with the response payload; rejects with {@link TtrpcError} for a non-OK status, a local
   * deadline/cancel, an oversized request (RESOURCE_EXHAUSTED, nothing sent), or connection loss
   * ({@link ConnectionClosedError}, UNAVAILABLE).
   */
  call(service: string, method: string, payload: Uint8Array, options: CallOptions = {}): Promise<Uint8Array> {
    return new Promise<Uint8Array>((resolve, reject) => {
      let id: number;
      let data: Uint8Array;
      try {
        data = this.prepare(service, method, payload, options);
        id = this.allocId();
      } catch (err) {
        reject(err);
        return;
      }
      let done = false;
      let disarm: () => void = () => {};
      const finish = (err: TtrpcError | null, value?: Uint8Array): void => {
        if (done) return;
        done = true;
        this.streams.delete(id);
        disarm();
        if (err) reject(err);
        else resolve(value ?? new Uint8Array(0));
      };
      this.streams.set(id, { onFrame: (frame) => finish(...unaryResult(frame)), fail: (err) => finish(err) });
      disarm = watchCall(options, (err) => finish(err));
      this.sendRequest(id, 0, data, (err) => finish(err));
    });
  }

  /**
   * Opens a stream. Client streaming: `streamingClient` (then `send`/`closeSend`); server streaming:
   * `streamingServer` with the input in `payload`; bidi: both. Throws at once (like `call` rejects) for a
   * closed client, an already aborted signal or an oversized request; later errors surface through the handle.
   */
  stream(service: string, method: string, options: StreamOptions): ClientStream {
    const data = this.prepare(service, method, options.payload ?? new Uint8Array(0), options);
    const id = this.allocId();
    const stream = new ClientStream(this.host, id, { streamingClient: options.streamingClient, streamingServer: options.streamingServer }, options.maxBufferedBytes);
    const fail = (err: TtrpcError): void => this.streams.get(id)?.fail(err);
    stream.setDisarm(watchCall(options, fail));
    this.sendRequest(id, options.streamingClient ? Flags.RemoteOpen : Flags.RemoteClosed, data, fail);
    return stream;
  }

  /** Closes the connection; everything pending rejects with ConnectionClosedError "ttrpc: client closed". */
  close(): void {
    this.conn.close('ttrpc: client closed');
  }

  /** Validates and encodes a Request; throws the error the call must fail with. */
  private prepare(service: string, method: string, payload: Uint8Array, options: CallOptions): Uint8Array {
    const closed = this.conn.closed;
    if (closed) throw closed;
    if (options.signal?.aborted) throw new TtrpcError(Code.CANCELED, 'context canceled', { cause: options.signal.reason });
    if (options.timeoutMs !== undefined && !(options.timeoutMs > 0)) {
      throw new TtrpcError(Code.DEADLINE_EXCEEDED, 'context deadline exceeded');
    }
    const data = encodeRequest({
      service,
      method,
      payload,
      timeoutNano: options.timeoutMs === undefined ? 0 : Math.round(options.timeoutMs * 1e6),
      metadata: toKeyValues(options.metadata),
    });
    if (data.length > MESSAGE_LENGTH_MAX) {
      // Go's client refuses to send it too (OversizedMessageErr, ResourceExhausted), same wording.
      throw new TtrpcError(Code.RESOURCE_EXHAUSTED, `message length ${data.length} exceed maximum message size of ${MESSAGE_LENGTH_MAX}`);
    }
    return data;
  }

  private allocId(): number {
    const id = this.nextId;
    if (id > STREAM_ID_MAX) throw new TtrpcError(Code.RESOURCE_EXHAUSTED, 'ttrpc: stream ids exhausted on this connection');
    this.nextId += 2;
    return id;
  }

  private sendRequest(id: number, flags: number, data: Uint8Array, fail: (err: TtrpcError) => void): void {
    try {
      this.conn.send(id, MessageType.Request, flags, data);
    } catch (err) {
      fail(err instanceof TtrpcError ? err : new TtrpcError(Code.INTERNAL, String(err)));
    }
  }

  private dispatch(frame: Frame): void {
    // Frames for ids we no longer track (cancelled, timed out) are dropped, as Go's client does.
    this.streams.get(frame.streamId)?.onFrame(frame);
  }

  private onOversize(header: FrameHeader, error: FrameTooLargeError): void {
    this.streams.get(header.streamId)?.fail(new TtrpcError(Code.RESOURCE_EXHAUSTED, error.message));
  }

  private onClose(reason: ConnectionClosedError): void {
    const sinks = [...this.streams.values()];
    this.streams.clear();
    for (const sink of sinks) sink.fail(reason);
    this.resolveClosed(reason);
  }
}

/** Turns a frame received for a unary call into finish() arguments. */
function unaryResult(frame: Frame): [TtrpcError | null, Uint8Array?] {
  if (frame.type !== MessageType.Response) {
    return [new TtrpcError(Code.INTERNAL, `ttrpc: unexpected message type ${frame.type} on unary call: protocol error`)];
  }
  try {
    const res = decodeResponse(frame.data);
    if (res.status && res.status.code !== Code.OK) {
      return [new TtrpcError(res.status.code, res.status.message, { details: res.status.details })];
    }
    return [null, res.payload];
  } catch (err) {
    return [new TtrpcError(Code.INTERNAL, `ttrpc: malformed response: ${(err as Error).message}`)];
  }
}

function toKeyValues(md: Metadata | undefined): KeyValue[] {
  const out: KeyValue[] = [];
  if (!md) return out;
  for (const [key, value] of Object.entries(md)) {
    if (typeof value === 'string') out.push({ key, value });
    else for (const v of value) out.push({ key, value: v });
  }
  return out;
}
