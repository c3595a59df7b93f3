/**
 * The agent's side of the exec helper (exec-helper.c): a small process inside the workload's
 * container, started once with `crun exec`, that forks each later exec there. Under emulation a
 * `crun exec` costs hundreds of milliseconds of a VM's CPU, a fork of the helper a few: the
 * namespaces, cgroup, capabilities and rlimits come with the fork, as crun would set them.
 *
 * The helper's binary is handed to crun as an open file (`--preserve-fds`) and run as
 * /proc/self/fd/3, so nothing is added to the container's filesystem. A child's stdio are pipes the
 * helper made; the agent opens their other ends through /proc/<helper>/fd/N. A terminal child gets
 * the slave of a pty the agent opened (by path: the container binds the guest's devpts) and makes it
 * its controlling terminal in a session of its own, so its shell has job control.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { openSync, closeSync, constants as fsConstants } from 'node:fs';
import { rm } from 'node:fs/promises';
import { Socket } from 'node:net';
import { constants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { Code, TtrpcError } from '../ttrpc/index.js';
import { pidFileWritten } from './file-wait.js';
import { errorText, silentLog, type Log } from './log.js';

/** Largest request the helper reads (exec-helper.c's MAX_FRAME): the command line and environment. */
export const MAX_REQUEST_BYTES = 4 * 1024 * 1024;
/** The protocol version the helper announces (exec-helper.c's HELPER_VERSION). */
const HELPER_VERSION = '2';
/** The helper's argument that makes it start one command in a terminal session (crun exec of a terminal, crun run). */
export const TTY_SESSION_ARG = 'tty-session';
/** Largest event the agent reads from the helper (they are a few dozen bytes). */
const MAX_EVENT_BYTES = 64 * 1024;
/** How long the helper may take to start (a `crun exec` under emulation takes about a second). */
const START_TIMEOUT_MS = 60_000;

/** What a process started through the helper runs. */
export interface HelperProcessSpec {
  args: string[];
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  /** The slave of the process's terminal (/dev/pts/N); none: pipes. */
  tty?: string;
}

/** The subset of ChildProcess a piped process of the table needs; node's ChildProcess is one too. */
export interface PipedChild extends EventEmitter {
  readonly pid?: number | undefined;
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  /** Closes stdin (EOF); without it, `stdin.end()` does. */
  closeStdin?(): void;
}

/** Frames: a 4-byte big-endian length, then NUL-terminated fields. */
export function encodeFrame(fields: readonly string[]): Buffer {
  const body = Buffer.from(fields.map((f) => `${f}\0`).join(''), 'utf8');
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

/** Splits complete frames off `buffer`; returns them and what is left. */
export function decodeFrames(buffer: Buffer, maxBytes: number): { frames: string[][]; rest: Buffer } {
  const frames: string[][] = [];
  let at = 0;
  while (buffer.length - at >= 4) {
    const len = buffer.readUInt32BE(at);
    if (len > maxBytes) throw new Error(`a frame of ${len} bytes is over the limit of ${maxBytes}`);
    if (buffer.length - at - 4 < len) break;
    const body = buffer.subarray(at + 4, at + 4 + len).toString('utf8');
    if (!body.endsWith('\0')) throw new Error('a frame whose last field does not end');
    frames.push(body.slice(0, -1).split('\0'));
    at += 4 + len;
  }
  return { frames, rest: buffer.subarray(at) };
}

/** A process started by the helper, shaped like a ChildProcess: 'exit' with its status, then 'close' when its output ended. */
export class HelperChild extends EventEmitter implements PipedChild {
  pid: number | undefined;
  stdout: Socket | null = null;
  stderr: Socket | null = null;
  private exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private exitEmitted = false;
  private openStreams = 0;
  /** The agent's end of the child's stdin until it is made a stream (most execs only close it). */
  private stdinFd: number | undefined;
  private stdinStream: Socket | null = null;

  constructor(readonly id: string) {
    super();
  }

  /** The child's stdin, made a stream on first use: under emulation each stream costs the one vCPU a share of an exec. */
  get stdin(): Socket | null {
    if (this.stdinFd !== undefined) {
      this.stdinStream = new Socket({ fd: this.stdinFd, readable: false, writable: true });
      this.stdinStream.on('error', () => undefined); // EPIPE after the process exited: nothing to do
      this.stdinFd = undefined;
    }
    return this.stdinStream;
  }

  closeStdin(): void {
    if (this.stdinFd === undefined) return void this.stdinStream?.end();
    closeSync(this.stdinFd);
    this.stdinFd = undefined;
  }

  /** Takes the agent's ends of the pipes, opened through /proc/<helper>/fd/N (none for a terminal child). */
  attach(pid: number, fds?: [number, number, number]): void {
    this.pid = pid;
    if (!fds) return;
    this.stdinFd = fds[0];
    this.stdout = new Socket({ fd: fds[1], readable: true, writable: false });
    this.stderr = new Socket({ fd: fds[2], readable: true, writable: false });
    for (const out of [this.stdout, this.stderr]) {
      this.openStreams++;
      out.once('close', () => {
        this.openStreams--;
        this.maybeClose();
      });
    }
  }

  exited(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exit) return;
    this.exit = { code, signal };
    // As node does for its children: nobody reads this stdin any more.
    if (this.stdinFd !== undefined) this.closeStdin();
    else this.stdinStream?.destroy();
    // Emitted on a later turn, as node's own 'exit' is: a short process's 'exited' frame often comes
    // in the same read as its 'started' frame, before whoever awaited the spawn has listened.
    setImmediate(() => {
      this.exitEmitted = true;
      this.emit('exit', code, signal);
      this.maybeClose();
    });
  }

  private maybeClose(): void {
    if (this.exit && this.exitEmitted && this.openStreams === 0) this.emit('close', this.exit.code, this.exit.signal);
  }
}

/** Where the helper's binary is inside the container: crun got it open as descriptor 3 (`--preserve-fds=1`). */
export const HELPER_IN_CONTAINER = '/proc/self/fd/3';

/**
 * Runs crun with the helper's binary open as its descriptor 3, for crun to pass on with
 * `--preserve-fds=1` (args must say so): the command in the container is then HELPER_IN_CONTAINER.
 */
export function spawnCrunWithHelper(crun: string, args: string[], binary: string, stdio: readonly (number | 'pipe')[], env: Record<string, string>): ChildProcess {
  const binaryFd = openSync(binary, fsConstants.O_RDONLY);
  try {
    return spawn(crun, args, { stdio: [...stdio, binaryFd], env, cwd: '/' });
  } finally {
    closeSync(binaryFd);
  }
}

/**
 * The helper's pid from crun's pid file (crun may write it just after the helper said it is ready);
 * `exited` is crun's own end, after which no pid comes.
 */
async function helperPid(pidFile: string, exited: Promise<unknown>): Promise<number> {
  const pid = await pidFileWritten(pidFile, exited);
  if (pid === undefined) throw new Error(`crun wrote no pid to ${pidFile}`);
  return pid;
}

function signalName(n: number): NodeJS.Signals | null {
  for (const [name, num] of Object.entries(constants.signals)) if (num === n) return name as NodeJS.Signals;
  return null;
}

export interface ExecHelperOptions {
  crun: string;
  containerId: string;
  /** The helper's binary (on the agent's filesystem). */
  binary: string;
  /** Where crun writes the helper's pid (as the agent sees it). */
  pidFile: string;
  /** The environment crun runs with. */
  crunEnv: Record<string, string>;
  log?: Log;
}

/** A running exec helper. */
export class ExecHelper {
  private buffer: Buffer = Buffer.alloc(0);
  private readonly children = new Map<string, HelperChild>();
  private readonly pending = new Map<string, { resolve: (c: HelperChild) => void; reject: (e: Error) => void }>();
  private seq = 0;
  private gone: string | undefined;
  private pid = 0;
  private readonly log: Log;

  private constructor(private readonly proc: ChildProcess, options: ExecHelperOptions) {
    this.log = options.log ?? silentLog;
  }

  /** Starts the helper in the container; rejects (and leaves nothing running) when it does not come up. */
  static async start(options: ExecHelperOptions): Promise<ExecHelper> {
    // A pid file of an earlier helper must not be taken for this one's.
    await rm(options.pidFile, { force: true });
    const proc = spawnCrunWithHelper(
      options.crun,
      ['exec', '--preserve-fds=1', `--pid-file=${options.pidFile}`, '--cwd=/', '--user=0:0', '--env=PATH=/usr/sbin:/usr/bin:/sbin:/bin', options.containerId, HELPER_IN_CONTAINER],
      options.binary,
      ['pipe', 'pipe', 'pipe'],
      options.crunEnv,
    );
    const helper = new ExecHelper(proc, options);
    try {
      await helper.ready(options.pidFile);
      return helper;
    } catch (err) {
      proc.kill('SIGKILL');
      throw err;
    }
  }

  /** Why the helper can no longer be used; undefined while it runs. */
  get unusable(): string | undefined {
    return this.gone;
  }

  private ready(pidFile: string): Promise<void> {
    // Made before any output is read: node may emit 'exit' before the last of the helper's output.
    const exited = new Promise<void>((resolve) => this.proc.once('exit', () => resolve()));
    return new Promise<void>((resolve, reject) => {
      let stderr = '';
      const timer = setTimeout(() => fail(`it did not start within ${START_TIMEOUT_MS / 1000} s`), START_TIMEOUT_MS);
      const fail = (why: string): void => {
        clearTimeout(timer);
        this.gone = why;
        reject(new Error(`the exec helper did not start: ${why}${stderr ? `: ${stderr.trim().slice(0, 500)}` : ''}`));
      };
      this.proc.stderr!.on('data', (d: Buffer) => {
        const text = d.toString('utf8');
        if (stderr.length < 4096) stderr += text;
        if (this.pid) for (const line of text.split('\n').filter(Boolean)) this.log(`exec helper: ${line.slice(0, 500)}`);
      });
      this.proc.on('error', (err) => fail(err.message));
      this.proc.on('exit', (code, signal) => {
        const why = `it exited (${signal ?? `code ${code}`})`;
        if (!this.pid) return fail(why);
        this.closed(why);
      });
      this.proc.stdin!.on('error', () => undefined);
      this.proc.stdout!.on('data', (d: Buffer) => {
        try {
          this.buffer = Buffer.concat([this.buffer, d]);
          const { frames, rest } = decodeFrames(this.buffer, MAX_EVENT_BYTES);
          this.buffer = rest;
          for (const f of frames) {
            if (f[0] === 'ready' && !this.pid) {
              if (f[1] !== HELPER_VERSION) return fail(`it speaks protocol ${JSON.stringify(f[1] ?? '')}, not ${HELPER_VERSION} (an exec-helper of another build)`);
              void helperPid(pidFile, exited).then(
                (pid) => {
                  clearTimeout(timer);
                  this.pid = pid;
                  resolve();
                },
                (err: unknown) => fail(errorText(err)),
              );
            } else this.event(f);
          }
        } catch (err) {
          // The helper speaks nonsense: stop using it.
          this.log(`exec helper: ${errorText(err)}; stopping it`);
          this.proc.kill('SIGKILL');
        }
      });
    });
  }

  private event(f: string[]): void {
    const [kind, id = ''] = f;
    if (kind === 'started') {
      const waiter = this.pending.get(id);
      if (!waiter) return;
      this.pending.delete(id);
      const child = new HelperChild(id);
      try {
        if (f[3] === '-1') {
          // On a terminal: the agent holds its master already.
          child.attach(Number(f[2]));
          this.children.set(id, child);
          return waiter.resolve(child);
        }
        // The helper holds its ends until we say we opened ours, so no output is lost meanwhile.
        const fds = [f[3], f[4], f[5]].map((n, i) => openSync(`/proc/${this.pid}/fd/${Number(n)}`, (i === 0 ? fsConstants.O_WRONLY : fsConstants.O_RDONLY) | fsConstants.O_NONBLOCK)) as [number, number, number];
        child.attach(Number(f[2]), fds);
        this.children.set(id, child);
        waiter.resolve(child);
      } catch (err) {
        waiter.reject(new TtrpcError(Code.INTERNAL, `cannot open the pipes of the new process: ${errorText(err)}`));
        this.send(['signal', id, String(constants.signals.SIGKILL)]);
      } finally {
        this.send(['opened', id]);
      }
    } else if (kind === 'failed') {
      const waiter = this.pending.get(id);
      this.pending.delete(id);
      waiter?.reject(new TtrpcError(Code.INTERNAL, `the exec helper could not start the process: ${f[2] ?? 'no reason given'}`));
    } else if (kind === 'exited') {
      const child = this.children.get(id);
      if (!child) return;
      this.children.delete(id);
      const signo = Number(f[3]);
      child.exited(signo > 0 ? null : Number(f[2]), signo > 0 ? signalName(signo) : null);
    }
  }

  /** The helper is gone: pending starts fail; running children lost their status (as killed). */
  private closed(why: string): void {
    if (this.gone) return;
    this.gone = why;
    this.log(`exec helper: ${why}; execs go through crun again`);
    for (const [id, waiter] of this.pending) {
      this.pending.delete(id);
      waiter.reject(new TtrpcError(Code.UNAVAILABLE, `the exec helper is gone (${why})`));
    }
    // Its children were killed with the container, or live on without anyone to report their status.
    for (const child of this.children.values()) child.exited(null, 'SIGKILL');
    this.children.clear();
  }

  private send(fields: readonly string[]): void {
    if (this.gone) return;
    this.proc.stdin!.write(encodeFrame(fields));
  }

  /** Starts a process in the container; resolves once it runs and its pipes are ours. */
  spawn(spec: HelperProcessSpec): Promise<PipedChild> {
    if (this.gone) return Promise.reject(new TtrpcError(Code.UNAVAILABLE, `the exec helper is gone (${this.gone})`));
    const id = `p${++this.seq}`;
    if (spec.tty !== undefined && !/^\/dev\/pts\/\d{1,10}$/.test(spec.tty)) return Promise.reject(new TtrpcError(Code.INTERNAL, `not a terminal of the guest's devpts: ${spec.tty}`));
    const request = ['run', id, String(spec.uid), String(spec.gid), spec.cwd, spec.tty ?? '', String(spec.args.length), ...spec.args, String(spec.env.length), ...spec.env];
    if (request.some((field) => field.includes('\0'))) return Promise.reject(new TtrpcError(Code.INVALID_ARGUMENT, 'arguments and environment entries cannot contain NUL bytes'));
    const frame = encodeFrame(request);
    if (frame.length - 4 > MAX_REQUEST_BYTES) return Promise.reject(new TtrpcError(Code.INVALID_ARGUMENT, `the command line and environment take ${frame.length} bytes, more than ${MAX_REQUEST_BYTES}`));
    return new Promise<PipedChild>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.proc.stdin!.write(frame);
    });
  }

  /** Sends `signal` to a process the helper started. */
  signal(child: PipedChild, signal: NodeJS.Signals): void {
    const id = child instanceof HelperChild ? child.id : undefined;
    if (id === undefined) throw new TtrpcError(Code.INTERNAL, 'not a process of the exec helper');
    this.send(['signal', id, String(constants.signals[signal])]);
  }

  /** Stops the helper (its children keep running); resolves once it exited. */
  stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return Promise.resolve();
    const exited = new Promise<void>((resolve) => this.proc.once('exit', () => resolve()));
    this.proc.stdin!.end();
    return exited;
  }
}
