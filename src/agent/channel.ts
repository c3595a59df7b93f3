/**
 * The agent's end of the host channel. In the guest that is the virtio-serial port named
 * AGENT_PORT_NAME (shared/facts/guest.md §3a): opened once and kept (a second open fails EBUSY);
 * reads return EOF whenever no host is connected, so each host connection gets a new ReadStream on
 * the same fd, polled every 100 ms, while one WriteStream serves them all. For development and
 * tests the agent can listen on a unix socket instead. Either way every host connection begins
 * with the HCSYNC handshake (protocol/channel-sync.ts) and carries TTRPC after it.
 */
import { createReadStream, createWriteStream, open, openSync, read, write, writev } from 'node:fs';
import { chmod, lstat, readdir, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { TtrpcServer } from '../ttrpc/index.js';
import { writeWithBackpressure, type Transport } from '../ttrpc/transport.js';
import { errorText, silentLog, type Log } from './log.js';
import { MAX_SYNC_LINE, parseSyncRequest, SYNC_PREFIX, syncReply } from './protocol/channel-sync.js';
import { FrameBoundaryWatch } from './frame-watch.js';

type Chunk = Uint8Array | string;

/** A channel whose reader ends when the host goes away and is renewed for the next host (virtio-serial semantics). */
export interface PortChannel {
  /** The one writable used for every host connection. */
  writable: Writable;
  /** A new reader for the next host connection; it ends (EOF) when no host is connected. */
  newReadable(): Readable;
}

/**
 * Reads up to and including an `HCSYNC <nonce>` line, discarding anything before it (stale bytes of
 * an earlier connection, garbage). Returns the nonce and the bytes after the line, or undefined at EOF.
 */
export async function readSync(source: AsyncIterator<Chunk>): Promise<{ nonce: string; rest: Buffer } | undefined> {
  let buffered = Buffer.alloc(0);
  for (;;) {
    const next = await source.next();
    if (next.done) return undefined;
    const chunk = typeof next.value === 'string' ? Buffer.from(next.value, 'latin1') : Buffer.from(next.value);
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    let nl: number;
    while ((nl = buffered.indexOf(0x0a)) >= 0) {
      const line = buffered.subarray(0, nl).toString('latin1');
      buffered = buffered.subarray(nl + 1);
      // Stale bytes need not end with a newline, so the request may start mid-line.
      const at = line.lastIndexOf(SYNC_PREFIX);
      const nonce = at >= 0 ? parseSyncRequest(line.slice(at)) : undefined;
      if (nonce) return { nonce, rest: buffered };
    }
    // No newline yet: only the tail can still be the start of a sync line.
    if (buffered.length > MAX_SYNC_LINE) buffered = buffered.subarray(buffered.length - MAX_SYNC_LINE);
  }
}

/** An iterator over a reader's chunks that can take bytes back (the start of a new host's handshake). */
export class PushbackSource implements AsyncIterator<Chunk> {
  private stash: Buffer[] = [];
  constructor(private readonly inner: AsyncIterator<Chunk>) {}
  unshift(bytes: Buffer): void {
    if (bytes.length > 0) this.stash.unshift(bytes);
  }
  next(): Promise<IteratorResult<Chunk>> {
    const stashed = this.stash.shift();
    return stashed ? Promise.resolve({ done: false, value: stashed }) : this.inner.next();
  }
}

/** How a host connection ended: EOF, a new host's handshake in the stream, or no host at all. */
export type ConnectionEnd = 'eof' | 'resync' | 'no-host';

/** Timing of {@link serveHostConnection} (tests shorten it). */
export interface HostConnectionTiming {
  /**
   * A connection a new host's handshake replaced is torn down this much later (default
   * RETIRE_AFTER_MS); it is muted at once.
   */
  retireAfterMs?: number;
  /** "host connected" reaches the console this much later (default CONNECTED_LINE_AFTER_MS). */
  connectedLineAfterMs?: number;
}

/**
 * A new host's handshake on a live connection is how a restored guest meets its new host: the
 * restored VM's first calls follow at once. Tearing the old connection down (every pending call's
 * signal aborted, errors built) took a just-restored TCG guest 50-120 ms, all of it translated anew,
 * before the new handshake was answered; so the new host is served first, the old connection
 * muted (its late answers dropped, never written to the new host) and torn down later.
 */
export const RETIRE_AFTER_MS = 2_000;
/**
 * A console line costs a TCG guest 10-30 ms of CPU. Written at once, "host connected" lands on the
 * boot's and the restore's critical path (the host's first calls wait behind it); later it does not.
 */
export const CONNECTED_LINE_AFTER_MS = 3_000;

/**
 * Serves one host connection from `source`: handshake, then TTRPC until the input ends or a new
 * host's HCSYNC appears at a frame boundary (then those bytes are pushed back for the next round,
 * and this returns at once while the replaced connection is retired in the background).
 */
export async function serveHostConnection(server: TtrpcServer, source: PushbackSource, write: (chunk: Uint8Array) => boolean | Promise<unknown>, closeInput: () => void, log: Log, timing: HostConnectionTiming = {}): Promise<ConnectionEnd> {
  let sync: Awaited<ReturnType<typeof readSync>>;
  try {
    sync = await readSync(source);
  } catch {
    sync = undefined;
  }
  if (!sync) {
    closeInput();
    return 'no-host';
  }
  // The reply first: the host waits for it, and a console line costs a booting or just-restored guest
  // milliseconds under TCG.
  const replied = write(syncReply(sync.nonce));
  // Written later, or at the end of a shorter connection (before its "host disconnected"); a new
  // host cancels the timer, which a snapshot taken meanwhile would carry into the restored guest.
  let connectedLine: string | undefined = `host connected (sync ${sync.nonce})`;
  const logConnected = (): void => {
    if (connectedLine !== undefined) log(connectedLine);
    connectedLine = undefined;
  };
  const connectedTimer = setTimeout(logConnected, timing.connectedLineAfterMs ?? CONNECTED_LINE_AFTER_MS).unref();
  await replied;
  const watch = new FrameBoundaryWatch();
  let end = 'eof' as ConnectionEnd;
  let handOver = (): void => undefined;
  const handedOver = new Promise<ConnectionEnd>((resolve) => (handOver = () => {
    clearTimeout(connectedTimer);
    resolve('resync');
  }));
  const retireAfterMs = timing.retireAfterMs ?? RETIRE_AFTER_MS;
  const first = sync.rest;
  const transport: Transport = {
    // The same source the handshake read from, cut where a new host's handshake begins.
    readable: (async function* () {
      let pending: Chunk | undefined = first.length > 0 ? first : undefined;
      for (;;) {
        if (pending === undefined) {
          const next = await source.next();
          if (next.done) return;
          pending = next.value;
        }
        const chunk = typeof pending === 'string' ? Buffer.from(pending, 'latin1') : pending;
        pending = undefined;
        const seen = watch.push(chunk);
        if (seen.forward.length > 0) yield seen.forward;
        if (seen.resync) {
          source.unshift(seen.resync);
          end = 'resync';
          handOver();
          // The input is the next host's from here; this connection ends (and is torn down) later.
          // Until then its calls run on muted, and an output hold of its Io streams stays: a
          // process that writes a whole output buffer meanwhile waits for the teardown at most.
          await new Promise((resolve) => setTimeout(resolve, retireAfterMs).unref());
          return;
        }
      }
    })(),
    // Muted once replaced: a late answer of the old host's call must not reach the new host.
    write: (chunk) => (end === 'resync' ? true : write(chunk)),
    // On a resync the input stays open for the next host; only EOF or a failure closes it.
    close: () => {
      if (end !== 'resync') closeInput();
    },
  };
  const closed = server
    .serve(transport)
    .whenClosed()
    .then((reason) => {
      clearTimeout(connectedTimer);
      logConnected();
      log(`host disconnected (${end === 'resync' ? 'a new host connected' : reason.message})`);
      return end;
    })
    // Once handed over, nobody awaits this: a failing log must not become an unhandled rejection.
    .catch(() => end);
  return Promise.race([closed, handedOver]);
}

/** Options of {@link servePort}. */
export interface ServePortOptions extends HostConnectionTiming {
  /** Delay between polls while no host is connected (default 100 ms, guest.md §3a). */
  pollMs?: number;
  log?: Log;
  /** Stops the loop (tests). */
  signal?: AbortSignal;
}

/** Serves host connections on a port channel until `signal` aborts; host after host. */
export async function servePort(server: TtrpcServer, port: PortChannel, options: ServePortOptions = {}): Promise<void> {
  const pollMs = options.pollMs ?? 100;
  const log = options.log ?? silentLog;
  port.writable.on('error', (err: Error) => log(`channel write error: ${err.message}`));
  const write = (chunk: Uint8Array): boolean | Promise<unknown> => writeWithBackpressure(port.writable, chunk);
  while (!options.signal?.aborted) {
    const readable = port.newReadable();
    readable.on('error', () => undefined); // surfaces through the iterator
    const stop = (): void => void readable.destroy();
    options.signal?.addEventListener('abort', stop, { once: true });
    const source = new PushbackSource(readable[Symbol.asyncIterator]() as AsyncIterator<Chunk>);
    try {
      while ((await serveHostConnection(server, source, write, stop, log, options)) === 'resync');
    } catch (err) {
      log(`host connection failed: ${errorText(err)}`);
    } finally {
      options.signal?.removeEventListener('abort', stop);
      readable.destroy();
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** Paths of the guest's virtio-serial ports (tests use a fake tree). */
export interface VirtioPortPaths {
  /** /sys/class/virtio-ports */
  sysClass: string;
  /** /dev */
  dev: string;
}

/** /dev/vportNpM of the port named `name`, or undefined while it does not exist. */
export async function findVirtioPort(name: string, paths: VirtioPortPaths): Promise<string | undefined> {
  const ports = await readdir(paths.sysClass).catch(() => [] as string[]);
  for (const port of ports.sort()) {
    const portName = await readFile(join(paths.sysClass, port, 'name'), 'utf8').catch(() => '');
    if (portName.trim() === name) return join(paths.dev, port);
  }
  return undefined;
}

/**
 * Waits for the virtio-serial port `name` to appear, opens it once (`r+`) and returns it as a
 * PortChannel: one WriteStream and a new ReadStream per host connection, all on the same fd.
 */
export async function openVirtioPort(name: string, paths: VirtioPortPaths = { sysClass: '/sys/class/virtio-ports', dev: '/dev' }, log: Log = silentLog): Promise<PortChannel> {
  let device = await findVirtioPort(name, paths);
  for (let waited = 0; !device; waited += 100) {
    if (waited === 2000) log(`waiting for virtio-serial port ${name}`);
    await new Promise((r) => setTimeout(r, 100));
    device = await findVirtioPort(name, paths);
  }
  const fd = openSync(device, 'r+');
  log(`channel: ${device} (${name})`);
  // destroy() of an fs stream closes its fd even with autoClose false; the port must stay open for
  // the agent's whole life (a reopen fails EBUSY), so the streams get a close that does nothing.
  const keepOpen = { open, read, write, writev, close: (_fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => cb(null) };
  return {
    writable: createWriteStream(device, { fd, autoClose: false, fs: keepOpen }),
    newReadable: () => createReadStream(device, { fd, autoClose: false, highWaterMark: 64 * 1024, fs: keepOpen }),
  };
}

/** Listens on a unix socket (dev and tests): each accepted connection does the handshake, then TTRPC. */
export async function listenUnix(server: TtrpcServer, path: string, log: Log = silentLog): Promise<net.Server> {
  // Remove a stale socket file (never anything else).
  if ((await lstat(path).catch(() => undefined))?.isSocket()) await rm(path, { force: true });
  const listener = net.createServer((sock) => {
    sock.on('error', () => undefined);
    const write = (chunk: Uint8Array): boolean | Promise<unknown> => writeWithBackpressure(sock, chunk);
    const source = new PushbackSource(sock[Symbol.asyncIterator]() as AsyncIterator<Chunk>);
    serveHostConnection(server, source, write, () => sock.destroy(), log).catch((err: unknown) => {
      log(`host connection failed: ${errorText(err)}`);
      sock.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(path, () => {
      listener.off('error', reject);
      resolve();
    });
  });
  listener.on('error', (err) => log(`listener error: ${err.message}`));
  await chmod(path, 0o600);
  return listener;
}
