/**
 * One containerd connection held by the shim keeper and relayed, frame by frame, to hypercored's
 * socket for the same pod. containerd takes a closed shim connection for a dead shim (it marks the
 * tasks exited and runs the shim's `delete`), so this connection must stay open while hypercored
 * is away (crashed, restarting): the relay keeps containerd's side open and reconnects to hypercored.
 *
 * What happens to a call while hypercored is away:
 * - a call hypercored had not answered when it went: read-only calls (Wait, State, Pids, Stats,
 *   Connect) are sent again to the next hypercored, so a Wait outlives the restart; any other call
 *   (it may or may not have been carried out) is answered Unavailable at once;
 * - a call that arrives while hypercored is away waits for it; one that is not read-only is answered
 *   Unavailable after `awayWaitMs`.
 *
 * Both peers are untrusted byte sources: frames are bounded (4 MiB, as ttrpc), the calls in flight
 * and the bytes waiting for hypercored are bounded (over the bound, the call is answered
 * ResourceExhausted, the connection stays), answers for streams nobody opened are dropped (so are
 * requests that reuse a stream in flight), and a
 * side that does not read makes the relay stop reading the other side (no unbounded buffers).
 */
import net from 'node:net';
import { Code } from '../../ttrpc/errors.js';
import { encodeFrame, FrameDecoder, MessageType, type DecodeEvent } from '../../ttrpc/framing.js';
import { decodeRequest, encodeResponse } from '../../ttrpc/messages.js';

export interface RelayLimits {
  /** Calls in flight per connection. */
  maxStreams: number;
  /** Request bytes waiting for hypercored per connection. */
  maxQueuedBytes: number;
  /** How long a call that is not read-only waits for hypercored to come back. */
  awayWaitMs: number;
  /** How often an absent hypercored is tried again. */
  retryMs: number;
  /** Bytes written to a side that does not read before the other side stops being read. */
  maxWriteBuffer: number;
}

export const DEFAULT_RELAY_LIMITS: RelayLimits = { maxStreams: 256, maxQueuedBytes: 8 << 20, awayWaitMs: 30_000, retryMs: 200, maxWriteBuffer: 8 << 20 };

/** Calls that change nothing: sent again to a restarted hypercored when the first one never answered. */
const REPLAYABLE = new Set(['Wait', 'State', 'Pids', 'Stats', 'Connect']);

interface Call {
  /** The request frame as containerd sent it (a copy). */
  frame: Buffer;
  method: string;
  replayable: boolean;
  /** Written to the current hypercored connection. */
  sent: boolean;
  /** When it started waiting for hypercored (for calls that may not wait for ever). */
  waitingSince?: number;
}

export interface RelayEvents {
  log: (message: string) => void;
  /** containerd's side closed: the relay is over. */
  onClose: () => void;
}

export class RelayedConnection {
  private readonly calls = new Map<number, Call>();
  private readonly fromFront = new FrameDecoder();
  private back: net.Socket | undefined;
  private backUp = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly front: net.Socket,
    private readonly backPath: string,
    private readonly events: RelayEvents,
    private readonly limits: RelayLimits = DEFAULT_RELAY_LIMITS,
  ) {
    front.on('data', (chunk: Buffer) => this.onFrontData(chunk));
    front.on('error', () => front.destroy());
    front.on('close', () => this.close());
    front.on('drain', () => this.back?.resume());
    this.connectBack();
  }

  /** Whether hypercored's side is connected. */
  get connected(): boolean {
    return this.backUp;
  }

  /** Calls in flight (for tests and logs). */
  get inFlight(): number {
    return this.calls.size;
  }

  /** hypercored may be back: try now instead of at the next retry. */
  nudge(): void {
    if (this.closed || this.back) return;
    clearTimeout(this.retryTimer);
    this.connectBack();
  }

  /** Ends the relay: containerd sees its connection close (the pod's socket is gone). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.sweepTimer);
    this.front.destroy();
    this.back?.destroy();
    this.calls.clear();
    this.events.onClose();
  }

  private onFrontData(chunk: Buffer): void {
    for (const event of this.fromFront.push(chunk)) this.onFrontEvent(event);
  }

  private onFrontEvent(event: DecodeEvent): void {
    if (event.kind === 'oversize') {
      // As ttrpc does: the frame was skipped; its call is refused, the connection goes on.
      if (event.header.type === MessageType.Request) this.answer(event.header.streamId, Code.RESOURCE_EXHAUSTED, event.error.message);
      return;
    }
    const { frame } = event;
    if (frame.type !== MessageType.Request) {
      // Streaming data on an open call is passed on; Task calls are all unary, so nothing else is.
      if (frame.type === MessageType.Data && this.calls.has(frame.streamId) && this.backUp) this.writeBack(encodeFrame(frame.streamId, frame.type, frame.flags, frame.data));
      return;
    }
    // A stream id in flight again: answering it would answer the call in flight; it is dropped.
    if (this.calls.has(frame.streamId)) return this.events.log(`dropped a request that reuses stream ${frame.streamId}`);
    if (this.calls.size >= this.limits.maxStreams) return this.answer(frame.streamId, Code.RESOURCE_EXHAUSTED, `more than ${this.limits.maxStreams} calls in flight on one shim connection`);
    let method = '';
    try {
      method = decodeRequest(frame.data).method;
    } catch {
      // not lost: hypercored's server answers a malformed request itself, naming the fault
    }
    const call: Call = { frame: encodeFrame(frame.streamId, frame.type, frame.flags, frame.data), method, replayable: REPLAYABLE.has(method), sent: false };
    if (!this.backUp) {
      if (this.queuedBytes() + call.frame.length > this.limits.maxQueuedBytes) return this.answer(frame.streamId, Code.RESOURCE_EXHAUSTED, `more than ${this.limits.maxQueuedBytes} bytes of calls wait for hypercored`);
      call.waitingSince = Date.now();
    }
    this.calls.set(frame.streamId, call);
    if (this.backUp) this.send(call);
  }

  private onBackEvent(event: DecodeEvent): void {
    if (event.kind === 'oversize') {
      const call = this.calls.get(event.header.streamId);
      if (call && event.header.type === MessageType.Response) this.answer(event.header.streamId, Code.RESOURCE_EXHAUSTED, `hypercored's answer to ${call.method}: ${event.error.message}`);
      return;
    }
    const { frame } = event;
    // Only answers (and data) of calls containerd made go back to it; anything else is dropped.
    if (!this.calls.has(frame.streamId) || (frame.type !== MessageType.Response && frame.type !== MessageType.Data)) return;
    if (frame.type === MessageType.Response) this.calls.delete(frame.streamId);
    this.writeFront(encodeFrame(frame.streamId, frame.type, frame.flags, frame.data));
  }

  private connectBack(): void {
    if (this.closed) return;
    const back = net.connect(this.backPath);
    this.back = back;
    const decoder = new FrameDecoder();
    back.on('connect', () => {
      if (this.closed) return back.destroy();
      this.backUp = true;
      clearInterval(this.sweepTimer);
      this.sweepTimer = undefined;
      // Calls in stream order: hypercored's server wants increasing stream ids.
      for (const id of [...this.calls.keys()].sort((a, b) => a - b)) this.send(this.calls.get(id)!);
    });
    back.on('data', (chunk: Buffer) => {
      for (const event of decoder.push(chunk)) this.onBackEvent(event);
    });
    back.on('drain', () => this.front.resume());
    back.on('error', () => back.destroy());
    back.on('close', () => {
      if (this.back !== back) return;
      this.back = undefined;
      const wasUp = this.backUp;
      this.backUp = false;
      if (this.closed) return;
      if (wasUp) this.away();
      this.front.resume();
      this.retryTimer = setTimeout(() => this.connectBack(), this.limits.retryMs);
    });
  }

  /** hypercored went: calls it may have half done are refused, read-only ones wait to be sent again. */
  private away(): void {
    this.events.log(`hypercored went away from ${this.backPath}; ${this.calls.size} call(s) in flight`);
    const now = Date.now();
    for (const [id, call] of this.calls) {
      if (call.sent && !call.replayable) {
        this.answer(id, Code.UNAVAILABLE, `hypercored went away while handling ${call.method || 'a call'}; it may or may not have been carried out`);
        continue;
      }
      call.sent = false;
      call.waitingSince = now;
    }
    this.sweepTimer = setInterval(() => this.sweep(), Math.max(50, Math.min(1000, this.limits.awayWaitMs / 4)));
    this.sweepTimer.unref();
  }

  /** Calls that may not wait for ever and have waited long enough are refused. */
  private sweep(): void {
    const limit = Date.now() - this.limits.awayWaitMs;
    for (const [id, call] of this.calls) {
      if (!call.replayable && !call.sent && (call.waitingSince ?? 0) <= limit) this.answer(id, Code.UNAVAILABLE, `hypercored has been unreachable for ${Math.round(this.limits.awayWaitMs / 1000)} s; ${call.method || 'the call'} was not carried out`);
    }
  }

  private send(call: Call): void {
    call.sent = true;
    delete call.waitingSince;
    this.writeBack(call.frame);
  }

  private queuedBytes(): number {
    let n = 0;
    for (const call of this.calls.values()) if (!call.sent) n += call.frame.length;
    return n;
  }

  /** Answers a call here, with an error status, and forgets it. */
  private answer(streamId: number, code: number, message: string): void {
    this.calls.delete(streamId);
    this.writeFront(encodeFrame(streamId, MessageType.Response, 0, encodeResponse({ status: { code, message, details: [] }, payload: new Uint8Array(0) })));
  }

  private writeFront(frame: Buffer): void {
    if (this.front.destroyed) return;
    this.front.write(frame);
    if (this.front.writableLength > this.limits.maxWriteBuffer) this.back?.pause();
  }

  private writeBack(frame: Buffer): void {
    const back = this.back;
    if (!back || back.destroyed) return;
    back.write(frame);
    if (back.writableLength > this.limits.maxWriteBuffer) this.front.pause();
  }
}
