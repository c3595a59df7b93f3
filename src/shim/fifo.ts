/**
 * The stdio FIFOs containerd names for a process. They are paths a client chose, so each is
 * opened without following a symlink and must turn out to be a FIFO: a regular file (or a device)
 * at that path is refused, never written to. FIFOs are opened read-write and non-blocking, so the
 * open never waits for containerd's end; reads and writes then go through libuv's event loop (a
 * slow reader blocks nobody, the process's output simply waits).
 */
import { constants, fstatSync, open as openCallback, closeSync } from 'node:fs';
import net from 'node:net';
import { ErrorCodes, HypercoreError } from '../core/errors.js';

function openRaw(path: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) => openCallback(path, flags, (err, fd) => (err ? reject(err) : resolve(fd))));
}

/** A stdio path containerd gave: empty (no stdio), or an absolute path. URIs (binary://, file://) are not supported. */
export function checkStdioPath(what: string, path: string): void {
  if (path === '') return;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(path)) throw new HypercoreError(ErrorCodes.invalidArgument, `${what} "${path}": stdio URIs are not supported by the Hypercore shim (give FIFO paths)`);
  if (!path.startsWith('/')) throw new HypercoreError(ErrorCodes.invalidArgument, `${what} "${path}" must be an absolute path`);
}

/** Opens the FIFO at `path` as a socket-like stream for reading (stdin) or writing (stdout, stderr). */
export async function openFifo(path: string, direction: 'read' | 'write'): Promise<net.Socket> {
  let fd: number;
  try {
    fd = await openRaw(path, constants.O_RDWR | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch (err) {
    throw new HypercoreError(ErrorCodes.invalidArgument, `stdio ${path} cannot be opened: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return fifoStream(fd, path, direction);
}

/**
 * Opens the FIFO at `path` for writing only if someone reads it (undefined if nobody does, or it is
 * gone): for output of a process followed again, whose reader may have seen end of file already.
 */
export async function openFifoIfRead(path: string): Promise<net.Socket | undefined> {
  let fd: number;
  try {
    fd = await openRaw(path, constants.O_WRONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENXIO' || code === 'ENOENT') return undefined;
    throw new HypercoreError(ErrorCodes.invalidArgument, `stdio ${path} cannot be opened: ${code ?? String(err)}`);
  }
  return fifoStream(fd, path, 'write');
}

function fifoStream(fd: number, path: string, direction: 'read' | 'write'): net.Socket {
  if (!fstatSync(fd).isFIFO()) {
    closeSync(fd);
    throw new HypercoreError(ErrorCodes.invalidArgument, `stdio ${path} is not a FIFO; the Hypercore shim writes process output only to FIFOs`);
  }
  const socket = new net.Socket({ fd, readable: direction === 'read', writable: direction === 'write' });
  // A FIFO whose other end went away is the other end's business; the process must not fail for it.
  socket.on('error', () => socket.destroy());
  return socket;
}
