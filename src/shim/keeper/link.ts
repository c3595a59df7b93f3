/**
 * hypercored's side of the shim keeper (keeper.ts): finds the keeper on its control socket, or
 * starts one (detached, in a session of its own, so it outlives this hypercored), and tells it
 * which pod sockets to listen on and where to relay them. If the keeper dies, a new one is started
 * and told every pod socket again (containerd's connections died with the old one).
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCodes, HypercoreError } from '../../core/errors.js';
import type { Logger } from '../../core/ports.js';
import { encodeLine, LineReader, parseFromKeeper, type ToKeeper } from './control.js';

const CONNECT_TRIES = 100;
const CONNECT_RETRY_MS = 100;
const REPLY_TIMEOUT_MS = 10_000;
const RECONNECT_MS = 200;

interface Waiting {
  resolve: () => void;
  reject: (err: Error) => void;
}

interface HelloWaiter {
  resolve: (pid: number) => void;
  reject: (err: Error) => void;
}

/** The shim keeper cannot be reached or started (the shim's `start` fails with it). */
export class KeeperLinkError extends HypercoreError {
  constructor(message: string) {
    super(ErrorCodes.daemonUnavailable, message);
  }
}

export class KeeperLink {
  readonly controlPath: string;
  /** front → back of every pod socket this hypercored serves. */
  private readonly fronts = new Map<string, string>();
  /** The FIFOs held for each running process (by key). */
  private readonly holds = new Map<string, { fifos: string[]; stdin?: string }>();
  private readonly waiting = new Map<string, Waiting[]>();
  private socket: net.Socket | undefined;
  private connecting: Promise<net.Socket> | undefined;
  private stopped = false;
  /** The pid of the keeper connected now, once it said hello; undefined between keepers. */
  pid: number | undefined;
  /** Waiting for the connected keeper's hello (see keeperPid). */
  private helloWaiters: HelloWaiter[] = [];

  constructor(
    private readonly dir: string,
    private readonly logger: Logger,
  ) {
    this.controlPath = join(dir, 'keeper.sock');
  }

  /** Connects to the keeper (starting one if none answers). */
  async start(): Promise<void> {
    await this.connection();
  }

  /**
   * Connects to a keeper that already runs (it may hold connections of pods that are gone, which
   * `synced` then drops), and starts none: a hypercored without pods needs no keeper process.
   */
  async reconnect(): Promise<void> {
    if (this.socket && !this.socket.destroyed) return;
    const socket = await dial(this.controlPath).catch(() => undefined);
    if (socket) this.attach(socket);
  }

  /**
   * The pid of the keeper holding containerd's connections: the one connected now (a keeper is
   * started if none runs), once it said hello. Never a gone keeper's pid, which the system may have
   * given to another process by now.
   */
  async keeperPid(): Promise<number> {
    if (this.stopped) throw new KeeperLinkError('hypercored is stopping; it has no shim keeper to name');
    await this.connection();
    if (this.pid !== undefined) return this.pid;
    return new Promise<number>((resolve, reject) => {
      const waiter: HelloWaiter = {
        resolve: (pid) => {
          clearTimeout(timer);
          resolve(pid);
        },
        reject: (err) => {
          clearTimeout(timer);
          this.helloWaiters = this.helloWaiters.filter((w) => w !== waiter);
          reject(err);
        },
      };
      const timer = setTimeout(() => waiter.reject(new KeeperLinkError(`the shim keeper did not say its pid within ${REPLY_TIMEOUT_MS} ms`)), REPLY_TIMEOUT_MS);
      timer.unref();
      this.helloWaiters.push(waiter);
    });
  }

  /** Has the keeper listen on `front` and relay it to `back`; resolves once it listens. */
  async listen(front: string, back: string): Promise<void> {
    this.fronts.set(front, back);
    const socket = await this.connection();
    await this.request(socket, { op: 'listen', front, back }, front);
  }

  /** The pod is gone: the keeper closes its socket and containerd's connections to it. */
  unlisten(front: string): void {
    this.fronts.delete(front);
    this.send({ op: 'unlisten', front });
  }

  /** The keeper holds the process's output and stdin FIFOs open while it runs (fire and forget: a keeper that cannot, cannot). */
  hold(key: string, fifos: string[], stdin?: string): void {
    const held = { fifos, ...(stdin ? { stdin } : {}) };
    this.holds.set(key, held);
    this.send({ op: 'hold', key, ...held });
  }

  /** The process ended: the keeper lets its FIFOs go (containerd's reader sees end of file once hypercored's end closes too). */
  release(key: string): void {
    if (!this.holds.delete(key)) return;
    this.send({ op: 'release', key });
  }

  /** Every pod this hypercored serves has been listed: the keeper closes the sockets of others. */
  synced(): void {
    this.send({ op: 'synced' });
  }

  /** hypercored stops; the keeper keeps containerd's connections for the next one. */
  stop(): void {
    this.stopped = true;
    this.socket?.destroy();
  }

  private send(m: ToKeeper): void {
    if (this.socket && !this.socket.destroyed) this.socket.write(encodeLine(m));
  }

  private request(socket: net.Socket, m: ToKeeper, front: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new KeeperLinkError(`the shim keeper did not answer about ${front} within ${REPLY_TIMEOUT_MS} ms`)), REPLY_TIMEOUT_MS);
      const list = this.waiting.get(front) ?? [];
      list.push({ resolve: () => (clearTimeout(timer), resolve()), reject: (err) => (clearTimeout(timer), reject(err)) });
      this.waiting.set(front, list);
      socket.write(encodeLine(m));
    });
  }

  private connection(): Promise<net.Socket> {
    if (this.socket && !this.socket.destroyed) return Promise.resolve(this.socket);
    this.connecting ??= this.connect().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async connect(): Promise<net.Socket> {
    let socket = await dial(this.controlPath).catch(() => undefined);
    if (!socket) {
      this.spawnKeeper();
      for (let i = 0; i < CONNECT_TRIES && !socket; i++) {
        await new Promise((r) => setTimeout(r, CONNECT_RETRY_MS));
        socket = await dial(this.controlPath).catch(() => undefined);
      }
      if (!socket) throw new KeeperLinkError(`the shim keeper did not come up on ${this.controlPath}; see ${join(this.dir, 'keeper.log')}`);
    }
    this.attach(socket);
    // A keeper met again (or a new one): it hears every pod socket this hypercored serves.
    for (const [front, back] of this.fronts) socket.write(encodeLine({ op: 'listen', front, back }));
    for (const [key, held] of this.holds) socket.write(encodeLine({ op: 'hold', key, ...held }));
    return socket;
  }

  private attach(socket: net.Socket): void {
    this.socket = socket;
    const lines = new LineReader();
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const line of lines.push(chunk)) {
          const m = parseFromKeeper(line);
          if (m.op === 'hello') {
            this.pid = m.pid;
            for (const w of this.helloWaiters.splice(0)) w.resolve(m.pid);
            continue;
          }
          const list = this.waiting.get(m.front);
          const w = list?.shift();
          if (list && list.length === 0) this.waiting.delete(m.front);
          if (m.op === 'listening') w?.resolve();
          else w?.reject(new KeeperLinkError(`the shim keeper refused ${m.front}: ${m.message}`));
        }
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, 'bad message from the shim keeper');
        socket.destroy();
      }
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      const gone = this.pid;
      this.pid = undefined;
      for (const list of this.waiting.values()) for (const w of list) w.reject(new KeeperLinkError('the shim keeper went away'));
      this.waiting.clear();
      // Without pods no keeper is needed: the next pod's socket starts one.
      if (this.stopped || this.fronts.size === 0) {
        for (const w of this.helloWaiters.splice(0)) w.reject(new KeeperLinkError('the shim keeper went away before it said its pid'));
        return;
      }
      this.logger.warn({ pid: gone }, 'the shim keeper went away; starting another (containerd loses the connections it held)');
      setTimeout(() => {
        void this.connection().then(
          () => this.synced(),
          (err: unknown) => this.logger.error({ err: (err as Error).message }, 'cannot restart the shim keeper'),
        );
      }, RECONNECT_MS).unref();
    });
  }

  private spawnKeeper(): void {
    const log = openSync(join(this.dir, 'keeper.log'), 'a', 0o600);
    try {
      const main = fileURLToPath(new URL('./main.js', import.meta.url));
      // Detached: a session of its own, so neither hypercored's end nor its process group's signals reach it.
      // --jitless: the keeper relays a few small frames a second; V8's compilers would cost it 5 MiB of RSS.
      const child = spawn(process.execPath, ['--jitless', main, '--control', this.controlPath], { detached: true, stdio: ['ignore', 'ignore', log] });
      child.unref();
      this.logger.info({ pid: child.pid, control: this.controlPath }, 'started the shim keeper');
    } finally {
      closeSync(log);
    }
  }
}

function dial(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(path);
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}
