/**
 * Test fixture for the API transports: the real HTTP (fastify) and gRPC servers, wired as the daemon
 * wires them (gRPC on an internal socket, one public socket multiplexed by listenMultiplexed), over a
 * real VmService backed by SQLite, real VM directories in a temp dir and the FakeProvider (no QEMU).
 */
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Server as NetServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import type { FastifyInstance } from 'fastify';
import { FakeAgentConnector, fakeGuest, fakeImages, MemoryWorkloadLog } from '../core/testing/fake-agent.js';
import { FakeProvider, fakeBoot } from '../core/testing/fake-provider.js';
import { VmService } from '../core/vm-service.js';
import { openDatabase } from '../store/database.js';
import { SnapshotDirectories } from '../store/snapshot-directories.js';
import { SqliteSnapshotStore } from '../store/sqlite-snapshot-store.js';
import { SqliteVmStore } from '../store/sqlite-vm-store.js';
import { VmDirectories } from '../store/vm-directories.js';
import { startGrpcServer } from './grpc-server.js';
import { buildHttpApi } from './http-server.js';
import { VmOperations } from './operations.js';
import { loadVmServiceDefinition } from './proto.js';
import { listenMultiplexed } from './socket-mux.js';

/** The host CPU count the API validates `cores` against in these tests. */
export const TEST_HOST_CPUS = 2;
/** What the test server reports as its default guest kernel. */
export const TEST_GUEST_KERNEL = { bootDir: '/test/boot', version: '6.1.0-test-amd64', package: 'linux-image-6.1.0-test-amd64', packageVersion: '6.1.0-1' };

const silent = { info() {}, warn() {}, error() {}, debug() {}, child() { return silent; } };

export interface HttpResult {
  status: number;
  contentType: string;
  text: string;
}

/** A stream being received: what arrived so far, and how it ended (null: cleanly; else the error). */
export interface Received<T> {
  readonly items: T[];
  readonly done: Promise<Error | null>;
  /** Cancels the stream from the client side and waits for it to end. */
  cancel(): Promise<Error | null>;
}

type UnaryCallback = (err: grpc.ServiceError | null, res?: unknown) => void;
type UnaryMethod = (req: object, callback: UnaryCallback) => grpc.ClientUnaryCall;
type StreamMethod = (req: object) => grpc.ClientReadableStream<unknown>;

export class TestServer {
  readonly agent: Agent;
  readonly client: grpc.Client;
  private readonly sockets = new Set<Socket>();

  private constructor(
    readonly dir: string,
    readonly socket: string,
    readonly drive: string,
    readonly provider: FakeProvider,
    readonly service: VmService,
    private readonly store: SqliteVmStore,
    private readonly fastify: FastifyInstance,
    private readonly grpcServer: grpc.Server,
    private readonly mux: NetServer,
  ) {
    mux.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    this.agent = new Agent({ connect: { socketPath: socket }, bodyTimeout: 0, headersTimeout: 0 });
    const Client = loadVmServiceDefinition();
    this.client = new Client(`unix:${socket}`, grpc.credentials.createInsecure());
  }

  /**
   * With `agents`, image VMs work too: their guests are those fakes (no image files, no QEMU).
   * With `snapshots`, the provider takes snapshots and the service restores and clones.
   */
  static async start(options: { agents?: FakeAgentConnector; snapshots?: boolean } = {}): Promise<TestServer> {
    const dir = mkdtempSync(join(tmpdir(), 'hc-api-'));
    try {
      const drive = join(dir, 'rootfs.ext4');
      writeFileSync(drive, '');
      const db = openDatabase(join(dir, 'state.db'));
      const store = new SqliteVmStore(db);
      const provider = options.snapshots ? new FakeProvider().enableSnapshots() : new FakeProvider();
      // A snapshot keeps the guest system image by a hard link: it must exist.
      const systemImage = join(dir, 'system.ext4');
      writeFileSync(systemImage, 'system image');
      let ids = 0;
      const service = new VmService({
        store,
        providers: { get: (n) => (n === 'qemu' ? provider : undefined), all: () => [provider] },
        files: new VmDirectories(join(dir, 'root'), join(dir, 'run')),
        clock: { now: () => new Date() },
        ids: { newVmId: () => `${String(++ids).padStart(4, '0')}${'a'.repeat(12)}` },
        logger: silent,
        boot: fakeBoot,
        ...(options.agents ? { agents: options.agents, images: fakeImages, guest: options.snapshots ? { rootDisk: async () => systemImage } : fakeGuest, workloadLog: new MemoryWorkloadLog() } : {}),
        ...(options.snapshots ? { snapshots: { store: new SqliteSnapshotStore(db), files: new SnapshotDirectories(join(dir, 'root')) } } : {}),
      });
      const ops = new VmOperations({ service, hostCpus: TEST_HOST_CPUS, logger: silent, guestKernel: async () => TEST_GUEST_KERNEL });
      const socket = join(dir, 'hypercore.sock');
      const grpcServer = await startGrpcServer(ops, undefined, join(dir, 'hypercore-grpc.sock'));
      const http = buildHttpApi(ops);
      await http.ready();
      const mux = await listenMultiplexed(socket, http.server, join(dir, 'hypercore-grpc.sock'));
      return new TestServer(dir, socket, drive, provider, service, store, http, grpcServer, mux);
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** A valid wire spec (proto3 JSON) whose every field differs from its proto3 default. */
  spec(name: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      name,
      description: `the ${name} VM`,
      cores: 1,
      memoryMib: 256,
      kernelArgs: 'console=ttyS0',
      drive: this.drive,
      driveReadOnly: true,
      provider: 'qemu',
      hypervisor: { qemu: { accel: 'tcg' }, firecracker: {}, cloudHypervisor: {} },
      ...overrides,
    };
  }

  /** One HTTP/1.1 request over the public socket. `body` is sent as JSON; `rawBody` as is. */
  async http(method: 'GET' | 'POST' | 'DELETE', path: string, options: { body?: unknown; rawBody?: string } = {}): Promise<HttpResult> {
    const payload = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
    const res = await request(`http://localhost${path}`, {
      method,
      dispatcher: this.agent,
      ...(payload === undefined ? {} : { body: payload, headers: { 'content-type': 'application/json' } }),
    });
    return { status: res.statusCode, contentType: String(res.headers['content-type'] ?? ''), text: await res.body.text() };
  }

  async httpJson<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<{ status: number; json: T }> {
    const res = await this.http(method, path, body === undefined ? {} : { body });
    return { status: res.status, json: JSON.parse(res.text) as T };
  }

  /** A unary gRPC call over the public socket. */
  async grpc<T>(method: string, req: object): Promise<T> {
    return this.grpcRaw<T>(method, req);
  }

  /** A unary gRPC call over the public socket, the response as decoded; rejects with the grpc.ServiceError. */
  grpcRaw<T>(method: string, req: object): Promise<T> {
    const fn = (this.client as unknown as Record<string, UnaryMethod>)[method];
    if (!fn) throw new Error(`no gRPC method ${method}`);
    return new Promise<T>((resolve, reject) => {
      fn.call(this.client, req, (err, res) => (err ? reject(err) : resolve(res as T)));
    });
  }

  /** Resolves with the error of a gRPC call that must fail (and fails the test if it succeeds). */
  async grpcError(method: string, req: object): Promise<grpc.ServiceError> {
    try {
      await this.grpcRaw<unknown>(method, req);
    } catch (err) {
      return err as grpc.ServiceError;
    }
    throw new Error(`gRPC ${method} succeeded but was expected to fail`);
  }

  grpcStream(method: string, req: object): grpc.ClientReadableStream<unknown> {
    const fn = (this.client as unknown as Record<string, StreamMethod>)[method];
    if (!fn) throw new Error(`no gRPC method ${method}`);
    return fn.call(this.client, req);
  }

  /**
   * A streaming HTTP GET (NDJSON events, followed logs), received chunk by chunk. It does not wait
   * for the response head: the server may send it only with the first chunk.
   */
  httpStream(path: string): Received<Buffer> & { response: Promise<{ status: number; contentType: string } | Error> } {
    const abort = new AbortController();
    const pending = request(`http://localhost${path}`, { dispatcher: this.agent, signal: abort.signal });
    const items: Buffer[] = [];
    const done = (async (): Promise<Error | null> => {
      try {
        for await (const chunk of (await pending).body) items.push(chunk as Buffer);
        return null;
      } catch (err) {
        return err as Error;
      }
    })();
    const response = pending.then(
      (res) => ({ status: res.statusCode, contentType: String(res.headers['content-type'] ?? '') }),
      (err: unknown) => err as Error,
    );
    const cancel = () => {
      abort.abort();
      return done;
    };
    return { response, items, done, cancel };
  }

  /** A server-streaming gRPC call over the public socket, received message by message. */
  grpcCollect<T>(method: string, req: object): Received<T> {
    const call = this.grpcStream(method, req);
    const items: T[] = [];
    call.on('data', (message: unknown) => items.push(message as T));
    const done = new Promise<Error | null>((resolve) => {
      call.on('error', (err: Error) => resolve(err));
      call.on('end', () => resolve(null));
    });
    const cancel = () => {
      call.cancel();
      return done;
    };
    return { items, done, cancel };
  }

  async close(): Promise<void> {
    this.client.close();
    await this.agent.destroy();
    this.service.detachAll();
    const closed = new Promise<void>((resolve) => this.mux.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
    await this.fastify.close();
    this.grpcServer.forceShutdown();
    this.store.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Polls `check` every 10 ms until it is true; fails after `timeoutMs`. */
export async function until(what: string, check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
