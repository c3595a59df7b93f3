/**
 * The byte pipe a TTRPC connection runs over. It is deliberately not a socket: in the guest the agent channel
 * is a virtio-serial port, where `net.Socket({fd})` fails (ERR_INVALID_FD_TYPE) and the working setup is an
 * fs.ReadStream + fs.WriteStream pair on one fd, whose ReadStream ends (EOF) whenever the host disconnects
 * and must be re-created on the same fd while the WriteStream is kept (shared/facts/guest.md §3a).
 */
import net from 'node:net';
import type { Duplex, Readable, Writable } from 'node:stream';

/** A bidirectional byte stream carrying one TTRPC connection. */
export interface Transport {
  /** Incoming bytes; the connection ends when iteration ends (EOF) or throws (transport error). */
  readonly readable: AsyncIterable<Uint8Array | string>;
  /**
   * Writes one chunk (always one whole frame). May return a Promise to ask the caller to wait (back-pressure,
   * e.g. until 'drain'); a rejected Promise or a throw closes the connection. Chunks are never passed in
   * parallel with a pending Promise, so the transport sees frames in order.
   */
  write(chunk: Uint8Array): boolean | void | Promise<unknown>;
  /** Releases the transport: stop reading and let go of the connection. Must be idempotent. */
  close(): void;
}

/**
 * Writes to a Node Writable; when it reports a full buffer (`false`) returns a Promise settled by 'drain'
 * (or rejected by 'error'/'close'), so a slow peer throttles the writer instead of growing memory.
 */
export function writeWithBackpressure(w: Writable, chunk: Uint8Array): boolean | Promise<void> {
  if (w.destroyed || w.writableEnded) return Promise.reject(new Error('ttrpc: transport is not writable'));
  if (w.write(chunk)) return true;
  return new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      w.off('drain', onDrain);
      w.off('error', onError);
      w.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = (): void => done();
    const onError = (err: Error): void => done(err);
    const onClose = (): void => done(new Error('ttrpc: transport closed while writing'));
    w.on('drain', onDrain);
    w.on('error', onError);
    w.on('close', onClose);
  });
}

/** Wraps a Duplex (net.Socket, a stream pair from `stream.duplexPair`, …); `close()` destroys it. */
export function duplexTransport(stream: Duplex): Transport {
  // Without a listener an 'error' (ECONNRESET, EPIPE) would crash the process; it surfaces through
  // the readable iteration anyway.
  stream.on('error', () => {});
  return {
    readable: stream,
    write: (chunk) => writeWithBackpressure(stream, chunk),
    close: () => {
      stream.destroy();
    },
  };
}

/** Options for {@link streamPairTransport}. */
export interface StreamPairOptions {
  /**
   * Also end the writable on `close()`. Default false: on a virtio-serial port the WriteStream is kept across
   * host reconnects (the port is single-open; re-opening fails with EBUSY), only the ReadStream is renewed.
   */
  closeWritable?: boolean;
}

/**
 * Wraps a separate readable and writable, e.g. fs.createReadStream/createWriteStream on one virtio-serial fd
 * (`{fd, autoClose: false}`), or stdin/stdout. `close()` destroys the readable (and optionally the writable).
 */
export function streamPairTransport(readable: Readable, writable: Writable, options: StreamPairOptions = {}): Transport {
  readable.on('error', () => {});
  writable.on('error', () => {});
  return {
    readable,
    write: (chunk) => writeWithBackpressure(writable, chunk),
    close: () => {
      readable.destroy();
      if (options.closeWritable) writable.end();
    },
  };
}

/** Connects to a unix socket (e.g. a shim or `containerd.sock.ttrpc`) and returns it as a transport. */
export function connectUnix(path: string): Promise<Transport> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(path);
    const onError = (err: Error): void => reject(err);
    sock.once('error', onError);
    sock.once('connect', () => {
      sock.off('error', onError);
      resolve(duplexTransport(sock));
    });
  });
}
