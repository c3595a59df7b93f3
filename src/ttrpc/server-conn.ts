/**
 * Server side of one connection (containerd/ttrpc server.go `serverConn.run`): validates stream ids, routes
 * requests to handlers, feeds Data frames to streaming handlers, and writes responses.
 */
import { deadlineError } from './client-stream.js';
import { FrameConnection } from './connection.js';
import { Code, ConnectionClosedError, statusFromError, TtrpcError } from './errors.js';
import { Flags, MESSAGE_LENGTH_MAX, MessageType, type Frame, type FrameHeader, type FrameTooLargeError } from './framing.js';
import { decodeRequest, encodeResponse, type Request, type Response, type Status } from './messages.js';
import { ServerStream, type CallContext, type Method, type StreamMethod } from './server-stream.js';
import type { Transport } from './transport.js';

/** Finds a method: `undefined` = unknown service, `null` = known service without that method. */
export type MethodLookup = (service: string, method: string) => Method | null | undefined;

interface ActiveCall {
  abort: AbortController;
  timer?: NodeJS.Timeout;
  stream?: ServerStream;
}

/** What a finished handler sends: a Response, or (streaming server, OK) the closing Data frame. */
type Reply = { response: Response } | { closeData: Uint8Array | undefined };

const MAX_TIMER_MS = 2 ** 31 - 1;

/** One served connection; created by `TtrpcServer.serve`. */
export class ServerConnection {
  private readonly conn: FrameConnection;
  private readonly active = new Map<number, ActiveCall>();
  private lastId = 0;
  private resolveClosed: (reason: ConnectionClosedError) => void = () => {};
  private readonly closedPromise = new Promise<ConnectionClosedError>((resolve) => {
    this.resolveClosed = resolve;
  });

  constructor(
    private readonly lookup: MethodLookup,
    transport: Transport,
  ) {
    this.conn = new FrameConnection(transport, {
      onFrame: (frame) => this.onFrame(frame),
      onOversize: (header, error) => this.onOversize(header, error),
      onClose: (reason) => this.onClose(reason),
    });
  }

  /** Number of calls whose handler has not finished. */
  get activeCalls(): number {
    return this.active.size;
  }

  /** Resolves (never rejects) when the connection has closed. */
  whenClosed(): Promise<ConnectionClosedError> {
    return this.closedPromise;
  }

  /** Closes the connection; running handlers see their signal abort. */
  close(message = 'ttrpc: server closed'): void {
    this.conn.close(message);
  }

  private onFrame(frame: Frame): void {
    const id = frame.streamId;
    if (id % 2 !== 1) {
      this.sendStatus(id, Code.INVALID_ARGUMENT, 'StreamID must be odd for client initiated streams');
      return;
    }
    if (frame.type === MessageType.Request) {
      if (id <= this.lastId) {
        this.sendStatus(id, Code.INVALID_ARGUMENT, 'StreamID cannot be re-used and must increment');
        return;
      }
      this.lastId = id;
      let req: Request;
      try {
        req = decodeRequest(frame.data);
      } catch (err) {
        this.sendStatus(id, Code.INVALID_ARGUMENT, `unmarshal request error: ${(err as Error).message}`);
        return;
      }
      this.start(id, frame.flags, req);
    } else if (frame.type === MessageType.Data) {
      const call = this.active.get(id);
      if (!call) {
        this.sendStatus(id, Code.INVALID_ARGUMENT, 'StreamID is no longer active');
        return;
      }
      // Data on a unary call is a client bug; dropping it keeps the one Response the client waits for.
      if (!call.stream) return;
      if ((frame.flags & Flags.NoData) === 0) call.stream.deliver(frame.data);
      if ((frame.flags & Flags.RemoteClosed) !== 0) call.stream.closeRecv();
    }
    // Other message types are ignored for forward compatibility, as Go does.
  }

  private start(id: number, flags: number, req: Request): void {
    const method = this.lookup(req.service, req.method);
    if (method === undefined) return this.sendStatus(id, Code.UNIMPLEMENTED, `service ${req.service}`);
    if (method === null) return this.sendStatus(id, Code.UNIMPLEMENTED, `method ${req.method}`);
    const call: ActiveCall = { abort: new AbortController() };
    let deadline: number | undefined;
    if (req.timeoutNano > 0) {
      const ms = req.timeoutNano / 1e6;
      deadline = Date.now() + ms;
      if (ms <= MAX_TIMER_MS) call.timer = setTimeout(() => call.abort.abort(deadlineError()), ms);
    }
    const metadata: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
    for (const kv of req.metadata) (metadata[kv.key] ??= []).push(kv.value);
    const ctx: CallContext = { service: req.service, method: req.method, streamId: id, metadata, signal: call.abort.signal, deadline };
    this.active.set(id, call);
    if (typeof method === 'function') {
      void this.settle(id, call, () => method(req.payload, ctx), (result): Reply => {
        if (result instanceof Uint8Array) return { response: { payload: result } };
        // Go refuses a nil response the same way ("ttrpc: marshal called with nil").
        return { response: { status: { code: Code.INTERNAL, message: 'ttrpc: handler returned no payload', details: [] }, payload: new Uint8Array(0) } };
      });
      return;
    }
    this.startStream(id, flags, req, method, call, ctx);
  }

  private startStream(id: number, flags: number, req: Request, method: StreamMethod, call: ActiveCall, ctx: CallContext): void {
    const stream = new ServerStream(
      { send: (type, fl, data) => this.conn.send(id, type, fl, data), drained: () => this.conn.drained() },
      id,
      { streamingClient: method.streamingClient, streamingServer: method.streamingServer },
    );
    call.stream = stream;
    // As services.go: the request payload is the first message when present or when the client does not
    // stream (then it is the only one; an empty message encodes to zero bytes).
    if (req.payload.length > 0 || !method.streamingClient) stream.deliver(req.payload);
    if (!method.streamingClient || (flags & Flags.RemoteOpen) === 0) stream.closeRecv();
    void this.settle(id, call, () => method.stream(stream, ctx), (value): Reply => {
      const result = value instanceof Uint8Array ? value : undefined;
      if (!method.streamingServer) return { response: { payload: result ?? new Uint8Array(0) } };
      // Streaming server, OK: close with a Data frame (Go: `respond(st, p, streaming=true, close=true)`).
      if (result !== undefined && result.length > MESSAGE_LENGTH_MAX) {
        return { response: { status: tooLarge(result.length), payload: new Uint8Array(0) } };
      }
      return { closeData: result };
    });
  }

  /** Runs a handler, then sends its outcome unless the call was already ended (oversize notice, close). */
  private async settle<T>(id: number, call: ActiveCall, run: () => Promise<T> | T, ok: (result: T) => Reply): Promise<void> {
    let reply: Reply;
    try {
      reply = ok(await run());
    } catch (err) {
      reply = { response: { status: statusFromError(err, call.abort.signal), payload: new Uint8Array(0) } };
    }
    if (call.timer) clearTimeout(call.timer);
    if (this.active.get(id) !== call) return;
    this.active.delete(id);
    call.stream?.finish();
    try {
      if ('response' in reply) this.respond(id, reply.response);
      else this.trySend(id, MessageType.Data, Flags.RemoteClosed | (reply.closeData === undefined ? Flags.NoData : 0), reply.closeData);
    } catch (err) {
      // Nothing here should throw; if it does, this promise is not awaited, so fail the connection loudly
      // rather than leave an unhandled rejection (which would end the process).
      this.conn.close(`ttrpc: failed to send response: ${err instanceof Error ? err.message : String(err)}`, err);
    }
  }

  private respond(id: number, response: Response): void {
    let data = encodeResponse(response);
    if (data.length > MESSAGE_LENGTH_MAX) {
      // Go HEAD fails the send and drops the connection; nothing was written yet, so we keep the
      // connection and tell the client why instead (same status as Go's OversizedMessageErr).
      data = encodeResponse({ status: tooLarge(data.length), payload: new Uint8Array(0) });
    }
    this.trySend(id, MessageType.Response, 0, data);
  }

  private sendStatus(id: number, code: number, message: string): void {
    this.respond(id, { status: { code, message, details: [] }, payload: new Uint8Array(0) });
  }

  private trySend(id: number, type: number, flags: number, data?: Uint8Array): void {
    if (this.conn.closed) return;
    this.conn.send(id, type, flags, data);
  }

  private onOversize(header: FrameHeader, error: FrameTooLargeError): void {
    // Go answers the frame's stream id with ResourceExhausted and keeps reading. If that stream was running,
    // the answer ends it for the client, so end it here too (the handler's later result is dropped).
    const call = this.active.get(header.streamId);
    if (call) {
      this.active.delete(header.streamId);
      if (call.timer) clearTimeout(call.timer);
      const err = new TtrpcError(Code.RESOURCE_EXHAUSTED, error.message);
      call.stream?.finish(err);
      call.abort.abort(err);
    }
    this.sendStatus(header.streamId, Code.RESOURCE_EXHAUSTED, error.message);
  }

  private onClose(reason: ConnectionClosedError): void {
    for (const call of this.active.values()) {
      if (call.timer) clearTimeout(call.timer);
      call.stream?.finish(reason);
      call.abort.abort(reason);
    }
    this.active.clear();
    this.resolveClosed(reason);
  }
}

function tooLarge(length: number): Status {
  return { code: Code.RESOURCE_EXHAUSTED, message: `message length ${length} exceed maximum message size of ${MESSAGE_LENGTH_MAX}`, details: [] };
}
