/** The HTTP/JSON transport (fastify): the same operations as gRPC under /v1, plus /openapi.json. */
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { PassThrough, Readable } from 'node:stream';
import { asHypercoreError, ErrorCodes, HypercoreError, InvalidArgumentError } from '../core/errors.js';
import type { Logger } from '../core/ports.js';
import type { ApiListener, HypercoreMetrics } from '../metrics/hypercore-metrics.js';
import { tlsPeerOf, type RemoteAuth } from './auth/authenticate.js';
import { checkOrigin, sessionToken } from './auth/browser-session.js';
import { httpRouteScopes, httpScope, publicHttpRoutes } from './auth/scopes.js';
import { eventsTooSlow, MAX_QUEUED_EVENT_BYTES, pacedProgress } from './client-pace.js';
import { errorBody, statusFor } from './error-status.js';
import { openApiDocument } from './openapi.js';
import type { HacFileCreateRequest, VmOperations } from './operations.js';
import type { ImageOperations, ProgressMessage } from './image-operations.js';
import { registerShimRoutes, type ShimOperations } from './shim-operations.js';
import type { TokenOperations } from './token-operations.js';

export interface HttpApiOptions {
  tokens?: TokenOperations;
  /** Serves GET /metrics and counts every request. */
  metrics?: HypercoreMetrics;
  /** Which listener this API serves, for the request metrics (default local). */
  listener?: ApiListener;
  /** For the remote listener: every request is authenticated and authorized before routing goes on. */
  auth?: { check: RemoteAuth; log: Logger };
  /** Longest a client may take to send a whole request (not its response), in ms; 0: no limit. */
  requestTimeoutMs?: number;
  /** The containerd shim's calls (local listener only: they name paths on this host). */
  shim?: ShimOperations;
  /** Told each route (`METHOD template`) as it is registered: the OpenAPI test compares them with the document. */
  onRoute?: (route: string) => void;
}

/** Largest CreateVm body: see the route. */
const CREATE_BODY_LIMIT = 8 * 1024 * 1024;

interface IdParams {
  id: string;
}

function flag(value: unknown): boolean {
  return value === true || value === 'true' || value === '1' || value === '';
}

/** Fastify's own 4xx errors (malformed JSON, body too large) are the client's fault: HC_INVALID_ARGUMENT. */
function isClientError(err: unknown): err is Error & { statusCode: number } {
  const status: unknown = err instanceof Error ? (err as Error & { statusCode?: unknown }).statusCode : undefined;
  return typeof status === 'number' && status < 500;
}

function sendError(reply: FastifyReply, err: unknown): FastifyReply {
  const e = err instanceof HypercoreError ? err : isClientError(err) ? new InvalidArgumentError(err.message) : asHypercoreError(err);
  if (e.code === ErrorCodes.unauthenticated) reply.header('www-authenticate', 'Bearer realm="hypercore"');
  return reply.code(statusFor(e).http).send(errorBody(e));
}

/**
 * Runs first for every request (also one for an unknown route, and a WebSocket upgrade): who is
 * calling, and may they? A refusal ends the request with 401 or 403 before any body is read or
 * any handler runs.
 */
function requireCredentials(app: FastifyInstance, auth: NonNullable<HttpApiOptions['auth']>): void {
  // A route without a scope would need admin (fail closed), which is surely not what its author meant: refuse to build.
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      const key = `${method} ${route.url}`;
      if (method !== 'HEAD' && !(key in httpRouteScopes) && !publicHttpRoutes.has(key)) throw new Error(`route ${method} ${route.url} has no scope in api/auth/scopes.ts`);
    }
  });
  app.addHook('onRequest', async (req) => {
    const route = req.routeOptions.url;
    try {
      // The console's page, its files and its login are open to all: they hold nothing and change nothing but the caller's own cookie.
      if (route !== undefined && publicHttpRoutes.has(`${req.method === 'HEAD' ? 'GET' : req.method} ${route}`)) {
        checkOrigin({ method: req.method, origin: req.headers.origin, host: req.headers.host, upgrade: false, byCookie: false });
        return;
      }
      // A browser logged in to the console sends the token in its session cookie instead of a header.
      const cookieToken = req.headers.authorization === undefined ? sessionToken(req.headers.cookie) : undefined;
      checkOrigin({ method: req.method, origin: req.headers.origin, host: req.headers.host, upgrade: req.headers.upgrade?.toLowerCase() === 'websocket', byCookie: cookieToken !== undefined });
      const caller = auth.check.authenticate(tlsPeerOf(req.raw.socket), cookieToken !== undefined ? `Bearer ${cookieToken}` : req.headers.authorization);
      auth.check.authorize(caller, httpScope(req.method, route), `${req.method} ${route ?? req.url.split('?')[0]}`);
    } catch (err) {
      auth.log.warn({ method: req.method, route: route ?? '(none)', peer: `${req.raw.socket.remoteAddress}:${req.raw.socket.remotePort}`, err: asHypercoreError(err).message }, 'remote request refused');
      throw err;
    }
  });
}

function countRequests(app: FastifyInstance, metrics: HypercoreMetrics, listener: ApiListener): void {
  app.addHook('onResponse', async (req, reply) => {
    metrics.apiRequest('http', listener, `${req.method} ${req.routeOptions.url ?? 'unmatched'}`, String(reply.statusCode));
  });
}

function registerTokenRoutes(app: FastifyInstance, ops: TokenOperations): void {
  app.post<{ Body: { scope?: unknown; name?: unknown } | undefined }>('/v1/tokens', async (req, reply) => reply.code(201).send(ops.createToken(req.body ?? {})));
  app.get('/v1/tokens', async () => ops.listTokens());
  app.delete<{ Params: { id: string } }>('/v1/tokens/:id', async (req) => ops.revokeToken(req.params));
}

/**
 * Streams progress as NDJSON. The status line is sent before the work can fail, so a failure
 * arrives as a last line `{"error": {...}}` (the same body as an HTTP error). Progress goes at the
 * client's pace: see pacedProgress.
 */
function ndjsonProgress(reply: FastifyReply, run: (onProgress: (p: ProgressMessage) => void) => Promise<unknown>): FastifyReply {
  const out = new PassThrough();
  const progress = pacedProgress<ProgressMessage>({ write: (p) => out.write(`${JSON.stringify(p)}\n`), once: (event, listener) => out.once(event, listener) });
  run((p) => progress.push(p)).then(
    () => {
      progress.finish();
      out.end();
    },
    (err: unknown) => {
      const e = err instanceof HypercoreError ? err : asHypercoreError(err);
      out.end(`${JSON.stringify(errorBody(e))}\n`);
    },
  );
  return reply.type('application/x-ndjson').send(out);
}

function registerImageRoutes(app: FastifyInstance, ops: ImageOperations): void {
  app.post<{ Body: { reference?: string; platform?: string } }>('/v1/images/pull', async (req, reply) => ndjsonProgress(reply, (p) => ops.pullImage(req.body ?? {}, p)));
  app.post<{ Body: { path?: string; reference?: string } }>('/v1/images/import', async (req, reply) => ndjsonProgress(reply, (p) => ops.importImage(req.body ?? {}, p)));
  app.post<{ Body: { all?: boolean } | undefined }>('/v1/images/prune', async (req) => ops.pruneImages(req.body ?? {}));
  app.get('/v1/images', async () => ops.listImages());
  // References contain '/' and ':', so the rest of the path is the reference.
  app.get<{ Params: { '*': string } }>('/v1/images/*', async (req) => ops.getImage({ reference: req.params['*'] }));
  app.delete<{ Params: { '*': string }; Querystring: { force?: string } }>('/v1/images/*', async (req) => ops.deleteImage({ reference: req.params['*'], force: flag(req.query.force) }));
}

export function buildHttpApi(ops: VmOperations, imageOps?: ImageOperations, options: HttpApiOptions = {}): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024, requestTimeout: options.requestTimeoutMs ?? 0 });
  const { onRoute } = options;
  if (onRoute) app.addHook('onRoute', (route) => [route.method].flat().forEach((method) => method !== 'HEAD' && onRoute(`${method} ${route.url}`)));
  app.setErrorHandler((err, _req, reply) => sendError(reply, err));
  app.setNotFoundHandler((req, reply) => sendError(reply, new HypercoreError(ErrorCodes.notFound, `no route ${req.method} ${req.url}; see GET /openapi.json`)));
  if (options.metrics) countRequests(app, options.metrics, options.listener ?? 'local');
  if (options.auth) requireCredentials(app, options.auth);
  const metrics = options.metrics;
  if (metrics) app.get('/metrics', async (_req, reply) => reply.type(metrics.contentType).send(await metrics.text()));
  if (options.tokens) registerTokenRoutes(app, options.tokens);

  app.get('/openapi.json', async () => openApiDocument());
  app.post('/v1/network/prune', async () => ops.pruneNetworks());
  app.get('/v1/doctor', async () => ops.doctor());
  app.get('/v1/version', async () => ops.version());
  app.get('/v1/vms', async (_req, reply) => reply.type('application/json; charset=utf-8').send(ops.listVmsJson()));
  // A spec may carry 1 MiB of metadata files and 64 KiB of values, which JSON escaping can make up to six times larger.
  app.post<{ Body: { spec?: unknown; detach?: boolean; start?: boolean } }>('/v1/vms', { bodyLimit: CREATE_BODY_LIMIT }, async (req, reply) => reply.code(201).send(await ops.createVm(req.body ?? {})));
  app.post<{ Body: { hac?: unknown; start?: boolean } }>('/v1/vms/hac', async (req, reply) => reply.code(201).send(await ops.createVmFromHac(req.body ?? {})));
  app.post<{ Body: HacFileCreateRequest }>('/v1/vms/hac-file', async (req, reply) => reply.code(201).send(await ops.createVmFromHacFile(req.body ?? {})));
  app.get<{ Params: IdParams }>('/v1/vms/:id', async (req) => ops.getVm(req.params));
  app.post<{ Params: IdParams }>('/v1/vms/:id/start', async (req) => ops.startVm(req.params));
  app.post<{ Params: IdParams }>('/v1/vms/:id/pause', async (req) => ops.pauseVm(req.params));
  app.post<{ Params: IdParams }>('/v1/vms/:id/resume', async (req) => ops.resumeVm(req.params));
  app.post<{ Params: IdParams; Body: { timeoutSeconds?: number; force?: boolean } | undefined }>('/v1/vms/:id/stop', async (req) =>
    ops.stopVm({ ...(req.body ?? {}), id: req.params.id }),
  );
  app.delete<{ Params: IdParams; Querystring: { force?: string } }>('/v1/vms/:id', async (req) => ops.deleteVm({ id: req.params.id, force: flag(req.query.force) }));
  app.get<{ Params: IdParams }>('/v1/vms/:id/metadata', async (req) => ops.getMetadata(req.params));
  app.get<{ Params: IdParams & { key: string } }>('/v1/vms/:id/metadata/:key', async (req) => ops.getMetadata(req.params));
  app.post<{ Params: IdParams; Body: { values?: unknown; secret?: unknown } | undefined }>('/v1/vms/:id/metadata', async (req) => ops.setMetadata({ ...(req.body ?? {}), id: req.params.id }));
  app.post<{ Params: IdParams; Body: { name?: string; leavePaused?: boolean } | undefined }>('/v1/vms/:id/snapshots', async (req, reply) => reply.code(201).send(await ops.createSnapshot({ ...(req.body ?? {}), id: req.params.id })));
  app.post<{ Params: IdParams; Body: { count?: number } | undefined }>('/v1/vms/:id/clone', async (req, reply) => reply.code(201).send(await ops.cloneVm({ ...(req.body ?? {}), id: req.params.id })));
  app.get('/v1/snapshots', async () => ops.listSnapshots());
  app.get<{ Params: IdParams }>('/v1/snapshots/:id', async (req) => ops.getSnapshot(req.params));
  app.delete<{ Params: IdParams }>('/v1/snapshots/:id', async (req) => ops.deleteSnapshot(req.params));
  app.post<{ Params: IdParams; Body: { name?: string } | undefined }>('/v1/snapshots/:id/spawn', async (req, reply) => reply.code(201).send(await ops.restoreSnapshot({ ...(req.body ?? {}), id: req.params.id })));

  app.get<{ Params: IdParams; Querystring: { follow?: string } }>('/v1/vms/:id/logs', async (req, reply) => {
    const abort = new AbortController();
    const chunks = ops.streamLogs({ id: req.params.id, follow: flag(req.query.follow) }, abort.signal);
    req.raw.on('close', () => abort.abort());
    reply.type('text/plain; charset=utf-8').send(Readable.from(chunks));
    return reply;
  });

  if (imageOps) registerImageRoutes(app, imageOps);
  if (options.shim) registerShimRoutes(app, options.shim);

  app.get('/v1/events', async (req, reply) => {
    const out = new PassThrough();
    // As WatchEvents: a client that stops reading is dropped, with the reason as the last line.
    const unsubscribe = ops.watchEvents((event) => {
      if (out.writableLength >= MAX_QUEUED_EVENT_BYTES) {
        unsubscribe();
        out.end(`${JSON.stringify(errorBody(eventsTooSlow(`${MAX_QUEUED_EVENT_BYTES} bytes`)))}\n`);
        return;
      }
      out.write(`${JSON.stringify(event)}\n`);
    });
    req.raw.on('close', () => {
      unsubscribe();
      if (!out.writableEnded) out.end();
    });
    reply.type('application/x-ndjson').send(out);
    // A quiet stream must still tell the client it is subscribed: send the head now.
    reply.raw.flushHeaders();
    return reply;
  });
  return app;
}
