/**
 * The metadata endpoint inside the guest, for VMs whose host does not serve it (a guest on a NAT
 * bridge has the daemon's, see metadata-service/host-endpoints): http://169.254.169.254/v1/metadata
 * (every key as JSON) and /v1/metadata/KEY (the raw value). Guest init puts the address on the
 * guest's loopback, and the workload shares the guest's network, so it reaches the endpoint as
 * any cloud VM does.
 *
 * Only the guest itself may ask. Linux accepts a packet for any of its addresses on any interface,
 * so a neighbour (another VM on a shared bridge, a router) that sends to 169.254.169.254 through
 * this guest's NIC would reach the listener: connections whose source is not one of the guest's
 * own addresses are closed before a byte is read. (The kernel drops packets arriving from outside
 * with one of its own addresses as their source, so that source cannot be forged.)
 */
import type { AddressInfo, Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { answerMetadata, METADATA_MAX_CONNECTIONS, METADATA_PATH, METADATA_SERVER_OPTIONS, plainAddress } from '../metadata-service/http-answer.js';
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

function interfaceAddresses(): ReadonlySet<string> {
  return new Set(Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address)));
}

/** Serves `store` on host:port until closed. */
export async function startMetadataEndpoint(store: MetadataStore, options: MetadataEndpointOptions): Promise<MetadataEndpoint> {
  // Loaded here, not at the agent's start: the import is on no boot path then.
  const { createServer } = await import('node:http');
  const ownAddresses = options.ownAddresses ?? interfaceAddresses;
  const log = options.log ?? silentLog;
  const server = createServer(METADATA_SERVER_OPTIONS, (req, res) => {
    try {
      answerMetadata(store, req, res);
    } catch (err) {
      log(`metadata endpoint: ${errorText(err)}`);
      res.destroy();
    }
  });
  server.maxConnections = METADATA_MAX_CONNECTIONS;
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
  log(`metadata endpoint on http://${options.host}:${(server.address() as AddressInfo).port}${METADATA_PATH}`);
  return {
    address: () => server.address() as AddressInfo,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
