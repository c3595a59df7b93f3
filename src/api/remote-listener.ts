/**
 * The remote listener: the API on a TCP port, for other hosts. Over TLS (`https://`), the client's
 * ALPN offer picks the protocol: a client that offers HTTP/1.1 (curl, browsers, Prometheus, the
 * CLI's HTTP client) gets HTTP/1.1 and the HTTP/JSON API; a client that offers only h2 (every gRPC
 * client) gets HTTP/2 and gRPC. A client without ALPN is told apart by its first bytes, as on the
 * unix socket. Plain TCP (`http://`, loopback only, --insecure-loopback) is always told apart so.
 *
 * The listener authenticates nothing itself: it records each connection's certificate state, and
 * the HTTP hooks and gRPC interceptor of the remote API check every request against it.
 */
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import type { Server as HttpServer } from 'node:http';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type * as grpc from '@grpc/grpc-js';
import { ConfigInvalidError } from '../core/errors.js';
import type { Logger } from '../core/ports.js';
import { tlsPeerOf, type TlsPeer } from './auth/authenticate.js';
import type { ConnectionInfo } from './grpc-interceptors.js';
import { sniffProtocol } from './socket-mux.js';

export interface ListenAddress {
  scheme: 'https' | 'http';
  host: string;
  port: number;
}

/** The daemon's CA (which signs accepted client certificates) and its server certificate and key (PEM). */
export interface TlsMaterial {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

export interface RemoteTargets {
  /** The remote HTTP API's server (it gets each HTTP/1.1 connection). */
  http: HttpServer;
  /** The remote gRPC server's injector (it gets each HTTP/2 connection). */
  grpc: grpc.ConnectionInjector;
}

/** A TLS handshake, or the first bytes of a connection without ALPN, must arrive within this. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Open connections at once; more wait in the kernel's backlog and are refused when it is full. */
const MAX_CONNECTIONS = 1024;

/** The certificate state of each open remote connection, for the gRPC interceptor (which sees only addresses). */
export class ConnectionPeers {
  private readonly byAddress = new Map<string, TlsPeer | undefined>();

  add(socket: Socket): void {
    const key = `${socket.remoteAddress}|${socket.remotePort}`;
    this.byAddress.set(key, tlsPeerOf(socket));
    socket.once('close', () => this.byAddress.delete(key));
  }

  lookup(connection: ConnectionInfo): TlsPeer | undefined {
    return this.byAddress.get(`${connection.remoteAddress}|${connection.remotePort}`);
  }

  get size(): number {
    return this.byAddress.size;
  }
}

/** Picks HTTP/1.1 whenever the client can speak it; only h2-only clients (gRPC) get h2. */
export function chooseAlpn(offered: readonly string[]): string | undefined {
  if (offered.includes('http/1.1')) return 'http/1.1';
  if (offered.includes('h2')) return 'h2';
  return undefined;
}

function dispatch(socket: Socket, protocol: string | false, targets: RemoteTargets): void {
  if (protocol === 'h2') targets.grpc.injectConnection(socket);
  else if (protocol === 'http/1.1') targets.http.emit('connection', socket);
  else sniffProtocol(socket, (kind) => (kind === 'grpc' ? targets.grpc.injectConnection(socket) : targets.http.emit('connection', socket)), HANDSHAKE_TIMEOUT_MS);
}

/** Listens on `address`: TLS for https (with `tls`), plain TCP for http. Resolves once listening. */
export async function listenRemote(address: ListenAddress, tls: TlsMaterial | undefined, targets: RemoteTargets, peers: ConnectionPeers, log: Logger): Promise<Server> {
  let server: Server;
  if (address.scheme === 'https') {
    if (!tls) throw new Error('an https listener needs the TLS material');
    const tlsServer = createTlsServer({
      ca: tls.ca,
      cert: tls.cert,
      key: tls.key,
      // Ask every client for a certificate but let the handshake finish without one (or with a bad
      // one): token clients have none, and a refusal is better told as a 401 naming the reason.
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      ALPNCallback: ({ protocols }) => chooseAlpn(protocols),
    });
    tlsServer.on('secureConnection', (socket: TLSSocket) => {
      peers.add(socket);
      dispatch(socket, socket.alpnProtocol ?? false, targets);
    });
    tlsServer.on('tlsClientError', (err, socket) => log.debug({ peer: `${socket.remoteAddress}:${socket.remotePort}`, err: err.message }, 'TLS handshake failed'));
    server = tlsServer;
  } else {
    server = createTcpServer((socket) => {
      peers.add(socket);
      dispatch(socket, false, targets);
    });
  }
  server.maxConnections = MAX_CONNECTIONS;
  await new Promise<void>((resolve, reject) => {
    const fail = (err: NodeJS.ErrnoException) => {
      const where = `${address.scheme}://${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
      reject(new ConfigInvalidError(`--listen ${where}: cannot listen there: ${err.code === 'EADDRINUSE' ? 'the port is in use' : err.message}`, [{ path: '--listen', message: err.message, value: where }]));
    };
    server.once('error', fail);
    server.listen({ host: address.host, port: address.port }, () => {
      server.off('error', fail);
      resolve();
    });
  });
  return server;
}
