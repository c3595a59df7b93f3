/** The gRPC transport: serves `hypercore.v1.VmService` (proto/hypercore/v1/vm.proto) on a unix socket. */
import * as grpc from '@grpc/grpc-js';
import type { VmEvent } from '../core/vm.js';
import { eventsTooSlow, MAX_QUEUED_EVENTS, pacedProgress } from './client-pace.js';
import { toServiceError } from './grpc-errors.js';
import type { VmOperations } from './operations.js';
import { serveProcessSession, type ProcessInput, type ProcessOutput } from './process-session.js';
import { loadImageServiceDefinition, loadTokenServiceDefinition, loadVmServiceDefinition } from './proto.js';
import type { ImageOperations, ProgressMessage } from './image-operations.js';
import type { TokenOperations } from './token-operations.js';

type Unary = grpc.handleUnaryCall<Record<string, unknown>, unknown>;

function unary<Req, Res>(op: (req: Req) => Res | Promise<Res>): Unary {
  return (call, callback) => {
    Promise.resolve()
      .then(() => op(call.request as Req))
      .then((res) => callback(null, res), (err: unknown) => callback(toServiceError(err)));
  };
}

/** Resolves on the stream's next 'drain'; rejects when the client goes away first. */
function whenDrained(stream: { once(event: 'drain', l: () => void): unknown; off(event: 'drain', l: () => void): unknown }, gone: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onGone = (): void => {
      stream.off('drain', onDrain);
      reject(new Error('the client is gone'));
    };
    const onDrain = (): void => {
      gone.removeEventListener('abort', onGone);
      resolve();
    };
    if (gone.aborted) return onGone();
    stream.once('drain', onDrain);
    gone.addEventListener('abort', onGone, { once: true });
  });
}

/** Exec/Attach: a bidi stream relayed by serveProcessSession; errors end the call with a status. */
function processStream(ops: VmOperations, mode: 'exec' | 'attach'): grpc.handleBidiStreamingCall<ProcessInput, ProcessOutput> {
  return (call) => {
    const gone = new AbortController();
    const onGone = (): void => gone.abort();
    call.once('cancelled', onGone);
    call.once('close', onGone);
    serveProcessSession(
      ops.service,
      mode,
      call as AsyncIterable<ProcessInput>,
      (out) => {
        if (!call.write(out)) return whenDrained(call, gone.signal);
      },
      gone.signal,
    ).then(
      () => call.end(),
      (err: unknown) => call.emit('error', toServiceError(err)),
    );
  };
}

export function grpcHandlers(ops: VmOperations): grpc.UntypedServiceImplementation {
  return {
    Exec: processStream(ops, 'exec'),
    Attach: processStream(ops, 'attach'),
    CreateVm: unary((req: { spec?: unknown; detach?: boolean; start?: boolean }) => ops.createVm(req)),
    GetVm: unary((req: { id?: string }) => ops.getVm(req)),
    ListVms: unary(() => ops.listVms()),
    PruneNetworks: unary(() => ops.pruneNetworks()),
    Doctor: unary(() => ops.doctor()),
    Version: unary(() => ops.version()),
    StartVm: unary((req: { id?: string }) => ops.startVm(req)),
    PauseVm: unary((req: { id?: string }) => ops.pauseVm(req)),
    ResumeVm: unary((req: { id?: string }) => ops.resumeVm(req)),
    StopVm: unary((req: { id?: string; timeoutSeconds?: number; force?: boolean }) => ops.stopVm(req)),
    DeleteVm: unary((req: { id?: string; force?: boolean }) => ops.deleteVm(req)),
    GetMetadata: unary((req: { id?: string; key?: string }) => ops.getMetadata(req)),
    SetMetadata: unary((req: { id?: string; values?: unknown; secret?: boolean }) => ops.setMetadata(req)),
    CreateSnapshot: unary((req: { id?: string; name?: string; leavePaused?: boolean }) => ops.createSnapshot(req)),
    GetSnapshot: unary((req: { id?: string }) => ops.getSnapshot(req)),
    ListSnapshots: unary(() => ops.listSnapshots()),
    DeleteSnapshot: unary((req: { id?: string }) => ops.deleteSnapshot(req)),
    RestoreSnapshot: unary((req: { id?: string; name?: string }) => ops.restoreSnapshot(req)),
    CloneVm: unary((req: { id?: string; count?: number }) => ops.cloneVm(req)),
    WatchEvents: ((call: grpc.ServerWritableStream<unknown, VmEvent>) => {
      // The hub publishes synchronously and cannot wait for one client: a client that stops reading is
      // dropped once MAX_QUEUED_EVENTS are waiting (objects, as the call's stream is in object mode).
      const unsubscribe = ops.watchEvents((event) => {
        if (call.writableLength >= MAX_QUEUED_EVENTS) {
          unsubscribe();
          call.emit('error', toServiceError(eventsTooSlow(`${MAX_QUEUED_EVENTS} events`)));
          return;
        }
        call.write(event);
      });
      call.on('cancelled', unsubscribe);
      call.on('close', unsubscribe);
    }) as grpc.handleServerStreamingCall<unknown, VmEvent>,
    StreamLogs: ((call: grpc.ServerWritableStream<{ id?: string; follow?: boolean }, { data: Buffer }>) => {
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort());
      call.on('close', () => abort.abort());
      void (async () => {
        try {
          for await (const data of ops.streamLogs(call.request, abort.signal)) {
            if (!call.write({ data })) await whenDrained(call, abort.signal);
          }
          call.end();
        } catch (err) {
          // grpc-js turns an 'error' event into the call's status; destroy() would end it with none.
          call.emit('error', toServiceError(err));
        }
      })();
    }) as grpc.handleServerStreamingCall<{ id?: string; follow?: boolean }, { data: Buffer }>,
  };
}

/**
 * A server stream of progress messages that ends when `run` settles (an error ends it with a status).
 * Progress goes at the client's pace: see pacedProgress.
 */
function progressStream<Req>(run: (req: Req, onProgress: (p: ProgressMessage) => void) => Promise<unknown>): grpc.handleServerStreamingCall<Req, ProgressMessage> {
  return (call) => {
    const progress = pacedProgress<ProgressMessage>(call);
    run(call.request, (p) => progress.push(p)).then(
      () => {
        progress.finish();
        call.end();
      },
      (err: unknown) => call.emit('error', toServiceError(err)),
    );
  };
}

export function imageGrpcHandlers(ops: ImageOperations): grpc.UntypedServiceImplementation {
  return {
    PullImage: progressStream((req: { reference?: string; platform?: string }, onProgress) => ops.pullImage(req, onProgress)),
    ImportImage: progressStream((req: { path?: string; reference?: string }, onProgress) => ops.importImage(req, onProgress)),
    ListImages: unary(() => ops.listImages()),
    GetImage: unary((req: { reference?: string }) => ops.getImage(req)),
    DeleteImage: unary((req: { reference?: string; force?: boolean }) => ops.deleteImage(req)),
    PruneImages: unary((req: { all?: boolean }) => ops.pruneImages(req)),
  };
}

export function tokenGrpcHandlers(ops: TokenOperations): grpc.UntypedServiceImplementation {
  return {
    CreateToken: unary((req: { scope?: string; name?: string }) => ops.createToken(req)),
    ListTokens: unary(() => ops.listTokens()),
    RevokeToken: unary((req: { id?: string }) => ops.revokeToken(req)),
  };
}

export interface GrpcServices {
  vms: VmOperations;
  images?: ImageOperations;
  tokens?: TokenOperations;
}

/**
 * A gRPC server with the services given, not yet listening. `options.interceptors` run in order,
 * the first closest to the transport: it sees every status, including one a later one sends.
 */
export function buildGrpcServer(services: GrpcServices, options: grpc.ServerOptions = {}): grpc.Server {
  const server = new grpc.Server(options);
  server.addService(loadVmServiceDefinition().service, grpcHandlers(services.vms));
  if (services.images) server.addService(loadImageServiceDefinition().service, imageGrpcHandlers(services.images));
  if (services.tokens) server.addService(loadTokenServiceDefinition().service, tokenGrpcHandlers(services.tokens));
  return server;
}

/** Starts a gRPC server bound to `unix:<socketPath>`. */
export async function startGrpcServer(ops: VmOperations, imageOps: ImageOperations | undefined, socketPath: string, more: { tokens?: TokenOperations; options?: grpc.ServerOptions } = {}): Promise<grpc.Server> {
  const server = buildGrpcServer({ vms: ops, ...(imageOps ? { images: imageOps } : {}), ...(more.tokens ? { tokens: more.tokens } : {}) }, more.options);
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix:${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
  });
  return server;
}
