/**
 * The metadata endpoint for guests on the daemon's NAT bridges, served on the host as clouds
 * serve theirs: nothing listens inside the guest, so a workload may bind every port it likes
 * (an nginx on 0.0.0.0:80 included). The NAT rules send each bridge's TCP traffic for
 * 169.254.169.254:80 to this bridge's listener on the gateway address (an ephemeral port, so it
 * never takes a port from a host service), and only when it entered through that bridge.
 *
 * A connection is answered with the metadata of the VM whose leased address is its source. The
 * bridge's anti-spoofing rules let a TAP send only from its own VM's address, so a source address
 * names one VM and a guest cannot read another's metadata. A source that is not a running VM's
 * lease on the bridge is closed before a byte is read. Each source gets few connections and a
 * bounded request rate: a guest in a loop must not be able to busy the daemon for everybody.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from '../core/ports.js';
import { answerMetadata, METADATA_MAX_CONNECTIONS, METADATA_SERVER_OPTIONS, plainAddress, sendText, type MetadataSource } from './http-answer.js';

/** Finds the metadata of the running VM that holds `address` in `subnet`, if any. */
export type MetadataResolver = (subnet: string, address: string) => MetadataSource | undefined;

/** A bridge whose guests get the endpoint: its subnet and the gateway address the listener binds. */
export interface MetadataBridge {
  bridge: string;
  subnet: string;
  gateway: string;
}

export interface HostMetadataOptions {
  resolve: MetadataResolver;
  logger: Logger;
  /** Open connections per guest (default 8). */
  connectionsPerGuest?: number;
  /** Requests per second per guest, sustained (default 20), and the burst above it (default 40). */
  requestsPerSecond?: number;
  burst?: number;
  now?: () => number;
}

/** Token bucket per source address: `take` says whether one more request may go now. */
class RequestBudget {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly now: () => number,
  ) {}

  take(source: string): boolean {
    const t = this.now();
    const b = this.buckets.get(source) ?? { tokens: this.burst, at: t };
    b.tokens = Math.min(this.burst, b.tokens + ((t - b.at) / 1000) * this.perSecond);
    b.at = t;
    this.buckets.set(source, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** A guest's bucket is full again after a quiet while: drop it so the map stays as small as the active guests. */
  forgetIdle(): void {
    const t = this.now();
    for (const [source, b] of this.buckets) if (b.tokens + ((t - b.at) / 1000) * this.perSecond >= this.burst) this.buckets.delete(source);
  }
}

/** One listener per bridge, on the bridge's gateway address. */
export class HostMetadataEndpoints {
  private readonly listeners = new Map<string, { server: Server; port: number }>();
  private readonly budget: RequestBudget;
  private readonly sweep: NodeJS.Timeout;

  constructor(private readonly options: HostMetadataOptions) {
    this.budget = new RequestBudget(options.requestsPerSecond ?? 20, options.burst ?? 40, options.now ?? Date.now);
    this.sweep = setInterval(() => this.budget.forgetIdle(), 60_000);
    this.sweep.unref();
  }

  /** Starts the bridge's listener if it has none; resolves to its port. */
  async ensure(b: MetadataBridge): Promise<number> {
    const running = this.listeners.get(b.bridge);
    if (running) return running.port;
    const server = this.serverFor(b.subnet);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: b.gateway, port: 0, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const port = (server.address() as AddressInfo).port;
    this.listeners.set(b.bridge, { server, port });
    this.options.logger.debug({ bridge: b.bridge, address: `${b.gateway}:${port}` }, 'metadata endpoint listening');
    return port;
  }

  /** The bridge's listener port, if it has one. */
  port(bridge: string): number | undefined {
    return this.listeners.get(bridge)?.port;
  }

  /** Stops the bridge's listener (its guests are gone). */
  async close(bridge: string): Promise<void> {
    const l = this.listeners.get(bridge);
    if (!l) return;
    this.listeners.delete(bridge);
    await new Promise<void>((resolve) => {
      l.server.close(() => resolve());
      l.server.closeAllConnections();
    });
  }

  async closeAll(): Promise<void> {
    clearInterval(this.sweep);
    await Promise.all([...this.listeners.keys()].map((b) => this.close(b)));
  }

  private serverFor(subnet: string): Server {
    const perGuest = this.options.connectionsPerGuest ?? 8;
    const open = new Map<string, number>();
    const server = createServer(METADATA_SERVER_OPTIONS, (req, res) => {
      const source = plainAddress(req.socket.remoteAddress);
      // Asked again at each request: a VM stopped or removed since the connection opened gets nothing.
      const metadata = this.options.resolve(subnet, source);
      if (!metadata) return void req.socket.destroy();
      if (!this.budget.take(source)) {
        res.setHeader('retry-after', '1');
        return sendText(res, 429, 'text/plain; charset=utf-8', 'too many requests\n');
      }
      try {
        answerMetadata(metadata, req, res);
      } catch (err) {
        this.options.logger.warn({ err: String(err), source }, 'metadata endpoint: request failed');
        res.destroy();
      }
    });
    server.maxConnections = METADATA_MAX_CONNECTIONS;
    server.on('connection', (socket: Socket) => {
      const source = plainAddress(socket.remoteAddress);
      const count = open.get(source) ?? 0;
      if (count >= perGuest || !this.options.resolve(subnet, source)) return void socket.destroy();
      open.set(source, count + 1);
      socket.once('close', () => {
        const left = (open.get(source) ?? 1) - 1;
        if (left <= 0) open.delete(source);
        else open.set(source, left);
      });
    });
    server.on('clientError', (_err, socket) => socket.destroy());
    return server;
  }
}
