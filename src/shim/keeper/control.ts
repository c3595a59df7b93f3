/**
 * What hypercored and the shim keeper say on the keeper's control socket: one JSON object a line,
 * each line bounded and checked before it is acted on (the keeper trusts nobody's bytes, and only
 * listens on and connects to sockets inside its own directory).
 */
import { dirname } from 'node:path';

/** hypercored to the keeper. */
export type ToKeeper =
  /** Listen on `front` (the address containerd has) and relay its connections to `back`. */
  | { op: 'listen'; front: string; back: string }
  /** Stop listening on `front` and close its connections (the pod is gone). */
  | { op: 'unlisten'; front: string }
  /**
   * Hold the output FIFOs of a running process open for writing (never written to), so that
   * containerd's reader sees no end of file while hypercored is away; and its stdin FIFO open for
   * reading (never read), so that containerd's writer gets no broken pipe meanwhile: what it
   * writes waits in the pipe for the next hypercored.
   */
  | { op: 'hold'; key: string; fifos: string[]; stdin?: string }
  /** The process ended: let its FIFOs go. */
  | { op: 'release'; key: string }
  /** Every pod (and held process) this hypercored serves was listed since it connected: the keeper drops the others. */
  | { op: 'synced' };

/** The keeper to hypercored. */
export type FromKeeper = { op: 'hello'; pid: number } | { op: 'listening'; front: string } | { op: 'refused'; front: string; message: string };

export const MAX_LINE_BYTES = 64 * 1024;
/** Longest key of a held process, and most FIFOs one holds (stdout, stderr). */
const MAX_KEY_LENGTH = 512;
const MAX_FIFOS = 2;
const MAX_PATH_BYTES = 4096;

export class ControlProtocolError extends Error {
  readonly code = 'HC_SHIM_KEEPER_PROTOCOL';
}

/** Splits control bytes into lines; keeps the unfinished rest, bounded. */
export class LineReader {
  private rest = '';

  push(chunk: Buffer): string[] {
    const parts = (this.rest + chunk.toString('utf8')).split('\n');
    this.rest = parts.pop() ?? '';
    if (Buffer.byteLength(this.rest) > MAX_LINE_BYTES) throw new ControlProtocolError(`a control line is longer than ${MAX_LINE_BYTES} bytes`);
    return parts.filter((p) => p.trim() !== '');
  }
}

function socketPath(dir: string, what: string, v: unknown): string {
  if (typeof v !== 'string' || !v.startsWith('/') || v.includes('\0') || v.split('/').includes('..') || dirname(v) !== dir || !v.endsWith('.sock') || Buffer.byteLength(v) > 107) {
    throw new ControlProtocolError(`${what} ${JSON.stringify(v)?.slice(0, 120)} is not a socket path directly in ${dir}`);
  }
  return v;
}

function holdKey(v: unknown): string {
  if (typeof v !== 'string' || v === '' || v.length > MAX_KEY_LENGTH) throw new ControlProtocolError(`a held process's key must be 1 to ${MAX_KEY_LENGTH} characters`);
  return v;
}

/** FIFOs are containerd's, anywhere: only absolute paths; the keeper opens nothing but FIFOs, without following links. */
function fifoPath(p: unknown): string {
  if (typeof p !== 'string' || !p.startsWith('/') || p.includes('\0') || Buffer.byteLength(p) > MAX_PATH_BYTES) throw new ControlProtocolError(`fifo ${JSON.stringify(p)?.slice(0, 120)} is not an absolute path`);
  return p;
}

function fifoPaths(v: unknown): string[] {
  if (!Array.isArray(v) || v.length > MAX_FIFOS) throw new ControlProtocolError(`fifos must be a list of at most ${MAX_FIFOS} paths`);
  return v.map(fifoPath);
}

/** Parses one line from hypercored; sockets must lie directly in `dir` (front) or `dir/back` (back). */
export function parseToKeeper(line: string, dir: string): ToKeeper {
  let m: unknown;
  try {
    m = JSON.parse(line);
  } catch {
    throw new ControlProtocolError(`a control line is not JSON: ${JSON.stringify(line.slice(0, 80))}`);
  }
  const op = (m as { op?: unknown } | null)?.op;
  const o = m as Record<string, unknown>;
  if (op === 'listen') return { op, front: socketPath(dir, 'front', o['front']), back: socketPath(`${dir}/back`, 'back', o['back']) };
  if (op === 'unlisten') return { op, front: socketPath(dir, 'front', o['front']) };
  if (op === 'hold') return { op, key: holdKey(o['key']), fifos: fifoPaths(o['fifos']), ...(o['stdin'] === undefined ? {} : { stdin: fifoPath(o['stdin']) }) };
  if (op === 'release') return { op, key: holdKey(o['key']) };
  if (op === 'synced') return { op };
  throw new ControlProtocolError(`unknown control op ${JSON.stringify(op)?.slice(0, 40)}`);
}

/** Parses one line from the keeper. */
export function parseFromKeeper(line: string): FromKeeper {
  const m = JSON.parse(line) as Record<string, unknown>;
  if (m['op'] === 'hello' && typeof m['pid'] === 'number') return { op: 'hello', pid: m['pid'] };
  if (m['op'] === 'listening' && typeof m['front'] === 'string') return { op: 'listening', front: m['front'] };
  if (m['op'] === 'refused' && typeof m['front'] === 'string' && typeof m['message'] === 'string') return { op: 'refused', front: m['front'], message: m['message'] };
  throw new ControlProtocolError(`unknown keeper message ${JSON.stringify(line.slice(0, 80))}`);
}

export function encodeLine(message: ToKeeper | FromKeeper): string {
  return `${JSON.stringify(message)}\n`;
}
