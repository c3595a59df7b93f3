/**
 * Server-side handler API: call context, method definitions, and the stream handle given to streaming
 * handlers (containerd/ttrpc services.go `streamHandler`).
 */
import type { StreamDesc } from './client-stream.js';
import { Code, TtrpcError } from './errors.js';
import { MESSAGE_LENGTH_MAX, MessageType } from './framing.js';
import { MessageQueue } from './queue.js';

/** What a handler knows about its call. */
export interface CallContext {
  /** Full service name, e.g. `containerd.task.v2.Task`. */
  readonly service: string;
  readonly method: string;
  readonly streamId: number;
  /** Request metadata; repeated keys collect all values in order (Go's MD). */
  readonly metadata: Readonly<Record<string, readonly string[]>>;
  /**
   * Aborted when the client's timeout_nano elapses (reason: TtrpcError DEADLINE_EXCEEDED) or the connection
   * closes (reason: ConnectionClosedError). Handlers should stop and may rethrow the reason.
   */
  readonly signal: AbortSignal;
  /** Deadline as Date.now() milliseconds, when the client sent a timeout. */
  readonly deadline?: number;
}

/** Unary handler: request payload in, response payload out; throw to return a status. */
export type UnaryHandler = (payload: Uint8Array, ctx: CallContext) => Promise<Uint8Array> | Uint8Array;

/**
 * Streaming method. The handler reads client messages from `stream` (for a non-streaming client: exactly the
 * request payload) and sends with `stream.send`. Its return value is the final message: for a streaming
 * server it rides on the closing Data frame (void → remote-closed|no-data); otherwise it is the Response
 * payload (void → empty).
 */
export interface StreamMethod extends StreamDesc {
  stream: (stream: ServerStream, ctx: CallContext) => Promise<Uint8Array | void>;
}

/** A method of a service: a function is unary, an object with `stream` is streaming. */
export type Method = UnaryHandler | StreamMethod;

/** Methods of one service by bare method name. */
export type ServiceMethods = Readonly<Record<string, Method>>;

/** What a ServerStream needs from its connection. */
export interface ServerStreamHost {
  send(type: number, flags: number, data: Uint8Array): void;
  drained(): Promise<void>;
}

/** Handle given to a streaming handler. */
export class ServerStream implements AsyncIterable<Uint8Array> {
  /**
   * Unbounded: the server (the agent in a guest) trusts its client (the host), and a client that streams
   * faster than the handler reads only spends the server's own memory.
   */
  private readonly queue = new MessageQueue<Uint8Array>(Infinity);
  private done = false;

  constructor(
    private readonly host: ServerStreamHost,
    /** The stream id. */
    readonly id: number,
    /** Which sides stream. */
    readonly desc: StreamDesc,
  ) {}

  /** True once the stream is over for the handler (result sent, oversize error, or connection closed). */
  get finished(): boolean {
    return this.done;
  }

  /** Next client message, `undefined` once the client closed its side. */
  recv(): Promise<Uint8Array | undefined> {
    return this.queue.next();
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this.queue[Symbol.asyncIterator]();
  }

  /** Sends one message (Data frame). Resolves when handed to the transport; throws once the stream is over. */
  async send(payload: Uint8Array): Promise<void> {
    if (!this.desc.streamingServer) throw new TtrpcError(Code.FAILED_PRECONDITION, 'ttrpc: cannot send data from non-streaming server');
    if (this.done) throw new TtrpcError(Code.FAILED_PRECONDITION, 'ttrpc: stream closed');
    if (payload.length > MESSAGE_LENGTH_MAX) {
      throw new TtrpcError(Code.RESOURCE_EXHAUSTED, `message length ${payload.length} exceed maximum message size of ${MESSAGE_LENGTH_MAX}`);
    }
    this.host.send(MessageType.Data, 0, payload);
    await this.host.drained();
  }

  /** @internal A client message arrived. */
  deliver(payload: Uint8Array): void {
    this.queue.push(payload);
  }

  /** @internal The client closed its sending side. */
  closeRecv(): void {
    this.queue.end();
  }

  /** @internal The stream is over: later sends throw; a pending recv rejects with `err` if given. */
  finish(err?: unknown): void {
    this.done = true;
    if (err !== undefined) this.queue.fail(err);
    else this.queue.end();
  }
}
