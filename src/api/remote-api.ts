/**
 * The remote API: the same operations as the unix socket, on TCP listeners for other hosts, with
 * every call authenticated (a client certificate of the daemon's CA, or a bearer token) and
 * authorized by scope before its handler runs, and host files limited to the allowed directories.
 * Its own fastify instance and gRPC server, so no hook or interceptor of it can leak onto the
 * unix socket's API, nor be missing here.
 */
import type { AddressInfo, Server } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../core/ports.js';
import type { HypercoreMetrics } from '../metrics/hypercore-metrics.js';
import type { TlsIdentity } from '../tls/material.js';
import { RemoteAuth } from './auth/authenticate.js';
import type { HostPathPolicy } from './auth/host-paths.js';
import type { ApiTokens } from './auth/tokens.js';
import { buildGrpcServer } from './grpc-server.js';
import { authInterceptor, countingInterceptor } from './grpc-interceptors.js';
import { buildHttpApi } from './http-server.js';
import type { ImageOperations } from './image-operations.js';
import type { VmOperations } from './operations.js';
import { ConnectionPeers, listenRemote, type ListenAddress } from './remote-listener.js';
import { TokenOperations } from './token-operations.js';
import { registerProcessSockets } from './websocket-process.js';

/** A remote client must send a whole request (not wait for its response) within this. */
const REQUEST_TIMEOUT_MS = 60_000;
/** Concurrent gRPC streams per remote connection. */
const MAX_STREAMS_PER_CONNECTION = 100;

export interface RemoteApiOptions {
  listen: readonly ListenAddress[];
  /** Needed when any address is https. */
  identity?: TlsIdentity;
  hostPaths: HostPathPolicy;
  vms: VmOperations;
  images?: ImageOperations;
  tokens: ApiTokens;
  metrics?: HypercoreMetrics;
  log: Logger;
}

export class RemoteApi {
  private constructor(
    private readonly http: FastifyInstance,
    private readonly grpcServer: grpc.Server,
    private readonly injector: grpc.ConnectionInjector,
    private readonly servers: Server[],
    /** The bound address of each listener, as a URL (the real port when 0 was asked for). */
    readonly addresses: string[],
  ) {}

  static async start(options: RemoteApiOptions): Promise<RemoteApi> {
    const { metrics, log } = options;
    const vms = options.vms.withHostPaths(options.hostPaths);
    const images = options.images?.withHostPaths(options.hostPaths);
    const tokens = new TokenOperations(options.tokens);
    const auth = new RemoteAuth(options.tokens);
    const peers = new ConnectionPeers();
    const interceptors = [
      ...(metrics ? [countingInterceptor((path, status) => metrics.apiRequest('grpc', 'remote', path, status))] : []),
      authInterceptor(auth, (connection) => peers.lookup(connection), log),
    ];
    const grpcServer = buildGrpcServer({ vms, tokens, ...(images ? { images } : {}) }, { interceptors, 'grpc.max_concurrent_streams': MAX_STREAMS_PER_CONNECTION });
    const injector = grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    const http = buildHttpApi(vms, images, { tokens, listener: 'remote', auth: { check: auth, log }, requestTimeoutMs: REQUEST_TIMEOUT_MS, ...(metrics ? { metrics } : {}) });
    await registerProcessSockets(http, vms.service);
    await http.ready();
    const api = new RemoteApi(http, grpcServer, injector, [], []);
    try {
      for (const address of options.listen) {
        const server = await listenRemote(address, options.identity, { http: http.server, grpc: injector }, peers, log);
        api.servers.push(server);
        const bound = server.address() as AddressInfo;
        api.addresses.push(`${address.scheme}://${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`);
      }
    } catch (err) {
      await api.close();
      throw err;
    }
    return api;
  }

  /** Stops accepting and ends every remote connection (open streams included). */
  async close(): Promise<void> {
    for (const server of this.servers.splice(0)) server.close();
    this.injector.destroy();
    this.grpcServer.forceShutdown();
    await this.http.close();
  }
}
