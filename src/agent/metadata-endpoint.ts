/**
 * The metadata endpoint inside the guest: http://169.254.169.254/v1/metadata (every key as JSON)
 * and /v1/metadata/KEY (the raw value). Guest init puts the address on the guest's loopback, and
 * the workload shares the guest's network, so it reaches the endpoint as any cloud VM does.
 *
 * Only the guest itself may ask. Linux accepts a packet for any of its addresses on any interface,
 * so a neighbour (another VM on a shared bridge, a router) that sends to 169.254.169.254 through
 * this guest's NIC would reach the listener: connections whose source is not one of the guest's
 * own addresses are closed before a byte is read. (The kernel drops packets arriving from outside
 * with one of its own addresses as their source, so that source cannot be forged.)
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { errorText, silentLog, type Log } from './log.js';
import type { MetadataStore } from './metadata-store.js';

export interface MetadataEndpointOptions {
  host: string;
  port: number;
  /** The guest's own addresses, asked at each connection (default: every interface's). */
  ownAddresses?: () => ReadonlySet<string>;
  log?: Log;
}

export interface MetadataEndpoint {
  address(): AddressInfo;
  close(): Promise<void>;
}

const PREFIX = '/v1/metadata';
/** A guest's tools ask one thing at a time; more at once is a runaway loop, not a client. */
const MAX_CONNECTIONS = 64;

function interfaceAddresses(): ReadonlySet<string> {
  return new Set(Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address)));
}

/** `::ffff:10.0.0.1` is 10.0.0.1 (a dual-stack listener reports IPv4 peers that way). */
function plainAddress(address: string | undefined): string {
  return (address ?? '').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function handle(store: MetadataStore, req: IncomingMessage, res: ServerResponse): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    return send(res, 405, 'text/plain; charset=utf-8', 'only GET and HEAD\n');
  }
  const path = (req.url ?? '').split('?', 1)[0]!;
  if (path === PREFIX || path === `${PREFIX}/`) return send(res, 200, 'application/json', `${JSON.stringify(store.all())}\n`);
  if (!path.startsWith(`${PREFIX}/`)) return send(res, 404, 'text/plain; charset=utf-8', `not found; see ${PREFIX}\n`);
  let key: string;
  try {
    key = decodeURIComponent(path.slice(PREFIX.length + 1));
  } catch {
    return send(res, 400, 'text/plain; charset=utf-8', 'malformed key\n');
  }
  const value = store.lookup(key);
  if (value === undefined) return send(res, 404, 'text/plain; charset=utf-8', 'no such key\n');
  // The raw value, exactly as set: a newline would change a token or a password.
  send(res, 200, 'text/plain; charset=utf-8', value);
}

/** Serves `store` on host:port until closed. */
export async function startMetadataEndpoint(store: MetadataStore, options: MetadataEndpointOptions): Promise<MetadataEndpoint> {
  // Loaded here, not at the agent's start: the import is on no boot path then.
  const { createServer } = await import('node:http');
  const ownAddresses = options.ownAddresses ?? interfaceAddresses;
  const log = options.log ?? silentLog;
  const server = createServer({ requestTimeout: 10_000, headersTimeout: 5_000, keepAliveTimeout: 5_000, maxHeaderSize: 8 * 1024 }, (req, res) => {
    try {
      handle(store, req, res);
    } catch (err) {
      log(`metadata endpoint: ${errorText(err)}`);
      res.destroy();
    }
  });
  server.maxConnections = MAX_CONNECTIONS;
  server.on('connection', (socket: Socket) => {
    if (!ownAddresses().has(plainAddress(socket.remoteAddress))) socket.destroy();
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  log(`metadata endpoint on http://${options.host}:${(server.address() as AddressInfo).port}${PREFIX}`);
  return {
    address: () => server.address() as AddressInfo,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
