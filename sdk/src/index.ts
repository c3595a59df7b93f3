/** @hypercore/sdk: a typed client of the Hypercore microVM daemon. */
export { HypercoreClient, type StreamOptions } from './client.js';
export type { ConnectionOptions, RemoteTarget, UnixSocketTarget } from './connection.js';
export * from './errors.js';
export { GuestProcess, type ProcessExit } from './process.js';
export type * from './types.js';
export type { components, operations, paths } from './generated/openapi.js';
