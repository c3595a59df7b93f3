/**
 * The scope each API call needs on the remote listener, for both transports. Reading needs `read`;
 * anything that changes VMs, images or the host, runs a process in a guest (exec, attach) or
 * types into its serial console needs `write`; managing tokens needs `admin`. A call missing from
 * these tables needs `admin` (fail closed), and a unit test keeps the tables complete.
 */
import type { TokenScope } from '../../core/api-token.js';

/** HTTP routes as `METHOD template`, the template as registered with fastify. */
export const httpRouteScopes: Readonly<Record<string, TokenScope>> = {
  'GET /openapi.json': 'read',
  'GET /metrics': 'read',
  'GET /v1/vms': 'read',
  'GET /v1/vms/:id': 'read',
  'GET /v1/vms/:id/logs': 'read',
  'GET /v1/events': 'read',
  'GET /v1/doctor': 'read',
  'GET /v1/version': 'read',
  'GET /v1/images': 'read',
  'GET /v1/images/*': 'read',
  'GET /v1/snapshots': 'read',
  'GET /v1/snapshots/:id': 'read',
  // Values as set, secrets as <secret>: nothing more than GET /v1/vms/:id shows.
  'GET /v1/vms/:id/metadata': 'read',
  'GET /v1/vms/:id/metadata/:key': 'read',
  'POST /v1/vms': 'write',
  'POST /v1/vms/hac': 'write',
  // Refused on the remote listener by the operation itself (its paths are of the caller's host).
  'POST /v1/vms/hac-file': 'write',
  'POST /v1/vms/:id/start': 'write',
  'POST /v1/vms/:id/pause': 'write',
  'POST /v1/vms/:id/resume': 'write',
  'POST /v1/vms/:id/stop': 'write',
  'DELETE /v1/vms/:id': 'write',
  'GET /v1/vms/:id/exec': 'write',
  'GET /v1/vms/:id/attach': 'write',
  'GET /v1/vms/:id/serial': 'write',
  'POST /v1/network/prune': 'write',
  'POST /v1/images/pull': 'write',
  'POST /v1/images/import': 'write',
  'POST /v1/images/prune': 'write',
  'DELETE /v1/images/*': 'write',
  'POST /v1/vms/:id/snapshots': 'write',
  'POST /v1/vms/:id/clone': 'write',
  'DELETE /v1/snapshots/:id': 'write',
  'POST /v1/snapshots/:id/spawn': 'write',
  // The containerd shim's calls: served on the local socket only (they name bundle paths on this
  // host); admin, should a remote listener ever serve them.
  'POST /v1/shim/start': 'admin',
  'POST /v1/shim/delete': 'admin',
  'POST /v1/vms/:id/metadata': 'write',
  'GET /v1/tokens': 'admin',
  'POST /v1/tokens': 'admin',
  'DELETE /v1/tokens/:id': 'admin',
};

/**
 * Routes that need no credentials: the web console's page and files (static, no data) and its
 * login and logout, which only set or clear the caller's own session cookie.
 */
export const publicHttpRoutes: ReadonlySet<string> = new Set(['GET /', 'GET /console/:file', 'POST /console/login', 'POST /console/logout']);

/** gRPC methods by their bare name (`CreateVm`); names are unique across the services. */
export const grpcMethodScopes: Readonly<Record<string, TokenScope>> = {
  GetVm: 'read',
  ListVms: 'read',
  WatchEvents: 'read',
  StreamLogs: 'read',
  Doctor: 'read',
  Version: 'read',
  ListImages: 'read',
  GetImage: 'read',
  GetSnapshot: 'read',
  ListSnapshots: 'read',
  GetMetadata: 'read',
  CreateVm: 'write',
  StartVm: 'write',
  PauseVm: 'write',
  ResumeVm: 'write',
  StopVm: 'write',
  DeleteVm: 'write',
  Exec: 'write',
  Attach: 'write',
  PruneNetworks: 'write',
  PullImage: 'write',
  ImportImage: 'write',
  DeleteImage: 'write',
  PruneImages: 'write',
  CreateSnapshot: 'write',
  DeleteSnapshot: 'write',
  RestoreSnapshot: 'write',
  CloneVm: 'write',
  SetMetadata: 'write',
  CreateToken: 'admin',
  ListTokens: 'admin',
  RevokeToken: 'admin',
};

/** The scope an HTTP request needs; a request that matched no route needs `read` (it gets a 404). */
export function httpScope(method: string, routeTemplate: string | undefined): TokenScope {
  if (routeTemplate === undefined) return 'read';
  return httpRouteScopes[`${method === 'HEAD' ? 'GET' : method} ${routeTemplate}`] ?? 'admin';
}

/** The scope a gRPC call needs, from its path `/package.Service/Method`. */
export function grpcScope(path: string): TokenScope {
  return grpcMethodScopes[path.slice(path.lastIndexOf('/') + 1)] ?? 'admin';
}
