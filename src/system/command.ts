/**
 * The one way Hypercore runs child processes (qemu, mkfs, ip, ...): never through a shell, always
 * with a timeout, stderr captured into the error so a failure explains itself.
 */
import { spawn } from 'node:child_process';
import { CommandFailedError } from '../core/errors.js';

export interface RunOptions {
  /** Milliseconds before the process is killed (SIGKILL). Default 60 s. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string | Buffer;
  /** Run in its own session so signals to the daemon's process group do not reach it. */
  detached?: boolean;
  /** How many bytes of stderr to keep for the error message. Default 4 KiB. */
  stderrTailBytes?: number;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
  durationMs: number;
}

const DEFAULT_TIMEOUT_MS = 60_000;
const MAX_CAPTURE_BYTES = 8 * 1024 * 1024;

/** Keeps the last `limit` bytes written to it, so a chatty process cannot grow memory without bound. */
class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly limit: number) {}
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - (this.chunks[0]?.length ?? 0) >= this.limit && this.chunks.length > 1) {
      this.size -= this.chunks.shift()!.length;
    }
  }
  toString(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.limit)).toString('utf8');
  }
}

export function describeCommand(file: string, args: readonly string[]): string {
  const shown = [file, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a)));
  const text = shown.join(' ');
  return text.length > 300 ? `${text.slice(0, 297)}...` : text;
}

/** Runs `file` with `args`; resolves on exit code 0, rejects with CommandFailedError otherwise. */
export function runCommand(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const started = Date.now();
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const command = describeCommand(file, args);
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      detached: options.detached ?? false,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const stdout = new TailBuffer(MAX_CAPTURE_BYTES);
    const stderr = new TailBuffer(MAX_CAPTURE_BYTES);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout!.on('data', (c: Buffer) => stdout.push(c));
    child.stderr!.on('data', (c: Buffer) => stderr.push(c));
    if (options.input !== undefined) child.stdin!.end(options.input);
    child.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const reason = err.code === 'ENOENT' ? 'could not be started: executable not found' : `could not be started: ${err.message}`;
      reject(new CommandFailedError({ command, exitCode: null, signal: null, stderrTail: '', reason }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const out = { stdout: stdout.toString(), stderr: stderr.toString(), exitCode: code ?? -1, durationMs: Date.now() - started };
      if (code === 0 && !timedOut) return resolve(out);
      const tail = tailLines(out.stderr, options.stderrTailBytes ?? 4096);
      const reason = timedOut ? `timed out after ${timeoutMs} ms` : undefined;
      reject(new CommandFailedError({ command, exitCode: code, signal, stderrTail: tail, reason }));
    });
  });
}

/** The last `maxBytes` of `text`, cut at a line start where possible. */
export function tailLines(text: string, maxBytes: number): string {
  if (text.length <= maxBytes) return text;
  const cut = text.slice(text.length - maxBytes);
  const nl = cut.indexOf('\n');
  return nl >= 0 && nl < cut.length - 1 ? cut.slice(nl + 1) : cut;
}
