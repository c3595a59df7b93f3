/**
 * TTRPC server: a registry of services, served on any number of transports (one transport = one connection).
 */
import { chmod, lstat, rm } from 'node:fs/promises';
import net from 'node:net';
import { ServerConnection } from './server-conn.js';
import type { Method, ServiceMethods } from './server-stream.js';
import { duplexTransport, type Transport } from './transport.js';

/** Options of {@link TtrpcServer.listen}. */
export interface ListenOptions {
  /**
   * File mode of the socket. Default 0o600: Go shims check the peer's uid (SO_PEERCRED), which Node cannot
   * read, so access is limited by the file mode instead (shared/facts/containerd-shim.md §2b).
   */
  mode?: number;
  /** Remove a stale socket file at `path` first (default true; a live one would make listen fail anyway). */
  removeStale?: boolean;
}

/** Serves registered services over transports and unix sockets. */
export class TtrpcServer {
  private readonly services = new Map<string, ServiceMethods>();
  private readonly connections = new Set<ServerConnection>();
  private readonly listeners = new Set<net.Server>();
  private shut = false;

  /**
   * Registers a service by its full proto name. Methods: a function is unary
   * (`(payload, ctx) => Promise<Uint8Array>`), `{ stream, streamingClient, streamingServer }` is streaming.
   * Throws on a duplicate service name (Go panics).
   */
  register(service: string, methods: ServiceMethods): void {
    if (this.services.has(service)) throw new Error(`ttrpc: duplicate service ${service} registered`);
    this.services.set(service, { ...methods });
  }

  /** Serves one connection over `transport`; it is closed by `close()` or when the transport ends. */
  serve(transport: Transport): ServerConnection {
    const conn = new ServerConnection((service, method) => this.lookup(service, method), transport);
    if (this.shut) {
      conn.close('ttrpc: server closed');
      return conn;
    }
    this.connections.add(conn);
    void conn.whenClosed().then(() => this.connections.delete(conn));
    return conn;
  }

  /**
   * Listens on a unix socket path and serves every accepted connection. A path starting with NUL is a Linux
   * abstract socket (no file: mode and stale-file handling do not apply).
   */
  async listen(path: string, options: ListenOptions = {}): Promise<net.Server> {
    if (this.shut) throw new Error('ttrpc: server closed');
    if ((options.removeStale ?? true) && !isAbstract(path)) await removeStaleSocket(path);
    const server = net.createServer((sock) => {
      this.serve(duplexTransport(sock));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // A listener error after startup must not crash the process; the server just stops accepting.
    server.on('error', () => {});
    if (!isAbstract(path)) await chmod(path, options.mode ?? 0o600);
    this.listeners.add(server);
    return server;
  }

  /** Number of open connections. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** Stops listening and closes every connection (running handlers see their signal abort). */
  async close(): Promise<void> {
    this.shut = true;
    const closing = [...this.listeners].map((l) => new Promise<void>((resolve) => l.close(() => resolve())));
    this.listeners.clear();
    for (const conn of [...this.connections]) conn.close('ttrpc: server closed');
    this.connections.clear();
    await Promise.all(closing);
  }

  private lookup(service: string, method: string): Method | null | undefined {
    const methods = this.services.get(service);
    if (!methods) return undefined;
    return Object.prototype.hasOwnProperty.call(methods, method) ? (methods[method] ?? null) : null;
  }
}

function isAbstract(path: string): boolean {
  return path.startsWith('\0');
}

async function removeStaleSocket(path: string): Promise<void> {
  // Only ever delete a socket file, and only one nobody listens on any more.
  const st = await lstat(path).catch(() => null);
  if (!st?.isSocket()) return;
  const alive = await new Promise<boolean>((resolve) => {
    const s = net.connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (!alive) await rm(path, { force: true });
}
