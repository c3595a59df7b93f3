/**
 * The shim keeper: one small process per host that holds containerd's shim connections for every
 * pod, so that they outlive hypercored. It listens on each pod's socket (the address containerd has
 * in the bundle's `address` file) and relays every connection to hypercored's socket for that pod
 * (relay.ts); when hypercored dies, the connections stay open and calls wait for the next one.
 *
 * hypercored tells it what to listen on over the control socket (control.ts). A hypercored that
 * connects lists the pods it serves and then says `synced`: sockets it did not list belong to pods
 * that went while no hypercored was there, and are closed.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync } from 'node:fs';
import { chmod, rm } from 'node:fs/promises';
import net from 'node:net';
import { dirname } from 'node:path';
import { ControlProtocolError, encodeLine, LineReader, parseToKeeper, type FromKeeper, type ToKeeper } from './control.js';
import { DEFAULT_RELAY_LIMITS, RelayedConnection, type RelayLimits } from './relay.js';

interface Front {
  server: net.Server;
  back: string;
  conns: Set<RelayedConnection>;
  /** Listed by the hypercored now connected (or by none yet since its `synced`). */
  listed: boolean;
}

interface Held {
  fds: number[];
  listed: boolean;
}

/** Most processes whose FIFOs are held at once. */
const MAX_HELD = 4096;

export class Keeper {
  private readonly fronts = new Map<string, Front>();
  private readonly held = new Map<string, Held>();
  private readonly dir: string;
  private control: net.Socket | undefined;
  private controlServer: net.Server | undefined;

  constructor(
    private readonly controlPath: string,
    private readonly log: (message: string) => void,
    private readonly limits: RelayLimits = DEFAULT_RELAY_LIMITS,
  ) {
    this.dir = dirname(controlPath);
  }

  /** Listens on the control socket (only root may reach it: the directory is hypercored's 0700 one). */
  async start(): Promise<void> {
    await rm(this.controlPath, { force: true });
    const server = net.createServer((s) => this.onControl(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.controlPath, () => resolve());
    });
    await chmod(this.controlPath, 0o600);
    this.controlServer = server;
  }

  /** Nothing to keep: no hypercored, no pod socket. */
  get idle(): boolean {
    return !this.control && this.fronts.size === 0;
  }

  /** FIFO descriptors held now (for tests). */
  get heldFds(): number {
    let n = 0;
    for (const h of this.held.values()) n += h.fds.length;
    return n;
  }

  /** Connections relayed now (for tests and logs). */
  connections(front: string): RelayedConnection[] {
    return [...(this.fronts.get(front)?.conns ?? [])];
  }

  async stop(): Promise<void> {
    for (const front of [...this.fronts.keys()]) await this.unlisten(front);
    for (const key of [...this.held.keys()]) this.release(key);
    this.control?.destroy();
    this.controlServer?.close();
    await rm(this.controlPath, { force: true });
  }

  private onControl(socket: net.Socket): void {
    // One hypercored at a time: a new one replaces the old (which is gone, or about to be).
    this.control?.destroy();
    this.control = socket;
    for (const f of this.fronts.values()) f.listed = false;
    for (const h of this.held.values()) h.listed = false;
    const lines = new LineReader();
    let chain = Promise.resolve();
    socket.on('data', (chunk: Buffer) => {
      let messages: ToKeeper[];
      try {
        messages = lines.push(chunk).map((l) => parseToKeeper(l, this.dir));
      } catch (err) {
        this.log(`control connection dropped: ${(err as Error).message}`);
        socket.destroy();
        return;
      }
      for (const m of messages) chain = chain.then(() => this.handle(m, socket));
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      if (this.control === socket) this.control = undefined;
    });
    this.reply(socket, { op: 'hello', pid: process.pid });
  }

  private async handle(m: ToKeeper, socket: net.Socket): Promise<void> {
    if (m.op === 'unlisten') return this.unlisten(m.front);
    if (m.op === 'hold') return this.hold(m.key, m.fifos, m.stdin);
    if (m.op === 'release') return this.release(m.key);
    if (m.op === 'synced') {
      for (const [front, f] of [...this.fronts]) if (!f.listed) await this.unlisten(front);
      for (const [key, h] of [...this.held]) if (!h.listed) this.release(key);
      return;
    }
    try {
      await this.listen(m.front, m.back);
      this.reply(socket, { op: 'listening', front: m.front });
    } catch (err) {
      this.reply(socket, { op: 'refused', front: m.front, message: err instanceof ControlProtocolError ? err.message : `cannot listen on ${m.front}: ${(err as Error).message}` });
    }
  }

  private async listen(front: string, back: string): Promise<void> {
    const known = this.fronts.get(front);
    if (known) {
      known.back = back;
      known.listed = true;
      // hypercored is back for this pod: its held connections reconnect now.
      for (const c of known.conns) c.nudge();
      return;
    }
    await rm(front, { force: true });
    const f: Front = { server: net.createServer(), back, conns: new Set(), listed: true };
    f.server.on('connection', (socket) => {
      const conn = new RelayedConnection(socket, f.back, { log: this.log, onClose: () => f.conns.delete(conn) }, this.limits);
      f.conns.add(conn);
    });
    await new Promise<void>((resolve, reject) => {
      f.server.once('error', reject);
      f.server.listen(front, () => resolve());
    });
    await chmod(front, 0o600);
    this.fronts.set(front, f);
  }

  private async unlisten(front: string): Promise<void> {
    const f = this.fronts.get(front);
    if (!f) return;
    this.fronts.delete(front);
    f.server.close();
    for (const c of [...f.conns]) c.close();
    await rm(front, { force: true });
  }

  /**
   * Opens the process's output FIFOs for writing, only if containerd reads them (non-blocking, so a
   * FIFO nobody reads is skipped instead of waited for), and its stdin FIFO for reading (never
   * read: containerd's writes wait in the pipe for hypercored), never following a link, and keeps
   * only FIFOs: a path that names anything else is closed at once and never written to or read.
   */
  private hold(key: string, fifos: string[], stdin?: string): void {
    const known = this.held.get(key);
    if (known) {
      known.listed = true;
      return;
    }
    if (this.held.size >= MAX_HELD) return this.log(`not holding the FIFOs of ${key}: ${MAX_HELD} processes held already`);
    const fds: number[] = [];
    const open = (path: string, flags: number): void => {
      let fd: number;
      try {
        // Checked before opening too: opening some devices does something.
        if (!lstatSync(path).isFIFO()) return;
        fd = openSync(path, flags | constants.O_NONBLOCK | constants.O_NOFOLLOW);
      } catch {
        return; // not lost: an output nobody reads (or a path gone or no FIFO) has no reader to keep from end of file
      }
      if (fstatSync(fd).isFIFO()) fds.push(fd);
      else closeSync(fd);
    };
    for (const path of fifos) open(path, constants.O_WRONLY);
    if (stdin) open(stdin, constants.O_RDONLY);
    this.held.set(key, { fds, listed: true });
  }

  private release(key: string): void {
    const h = this.held.get(key);
    if (!h) return;
    this.held.delete(key);
    for (const fd of h.fds) closeSync(fd);
  }

  private reply(socket: net.Socket, m: FromKeeper): void {
    if (!socket.destroyed) socket.write(encodeLine(m));
  }
}
