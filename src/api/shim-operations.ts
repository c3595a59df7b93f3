/**
 * The two calls of the containerd shim binary (`containerd-shim-hypercore-v2 start|delete`), on
 * hypercored's HTTP API: `POST /v1/shim/start` answers with the pod's TTRPC socket address,
 * `POST /v1/shim/delete` cleans up after a task containerd lost and tells how it ended. They are
 * for the shim binary only, so they are not part of the gRPC service.
 */
import type { FastifyInstance } from 'fastify';
import type { ShimDeleteRequest, ShimHost, ShimStartRequest } from '../shim/host.js';

export interface ShimOperations {
  start(req: ShimStartRequest): Promise<{ address: string }>;
  delete(req: ShimDeleteRequest): Promise<{ pid: number; exitStatus: number; exitedAt?: string }>;
}

export function shimOperations(host: ShimHost): ShimOperations {
  return {
    start: (req) => host.start(req),
    delete: (req) => host.delete(req),
  };
}

export function registerShimRoutes(app: FastifyInstance, ops: ShimOperations): void {
  app.post<{ Body: ShimStartRequest | undefined }>('/v1/shim/start', async (req) => ops.start(req.body ?? {}));
  app.post<{ Body: ShimDeleteRequest | undefined }>('/v1/shim/delete', async (req) => ops.delete(req.body ?? {}));
}
