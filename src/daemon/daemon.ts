/**
 * Wiring: builds the adapters (SQLite store, VM directories, providers), injects them into the
 * core VmService, reconciles with what is running, then serves the API on the unix socket.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import type { Server as NetServer } from 'node:net';
import { join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { HypercoreError, ErrorCodes } from '../core/errors.js';
import type { Logger, Provider, ProviderRegistry } from '../core/ports.js';
import type { ProviderName } from '../core/vm.js';
import { VmService } from '../core/vm-service.js';
import { hostPathsWithin, type HostPathPolicy } from '../api/auth/host-paths.js';
import { ApiTokens } from '../api/auth/tokens.js';
import { startGrpcServer } from '../api/grpc-server.js';
import { countingInterceptor } from '../api/grpc-interceptors.js';
import { buildHttpApi } from '../api/http-server.js';
import { RemoteApi } from '../api/remote-api.js';
import { TokenOperations } from '../api/token-operations.js';
import { HypercoreMetrics } from '../metrics/hypercore-metrics.js';
import { SqliteTokenStore } from '../store/sqlite-token-store.js';
import { loadServerIdentity, type TlsIdentity } from '../tls/material.js';
import { registerProcessSockets } from '../api/websocket-process.js';
import { VmOperations } from '../api/operations.js';
import { listenMultiplexed } from '../api/socket-mux.js';
import { VmLogFiles } from '../providers/vm-logs.js';
import { TtrpcAgentConnector } from '../agent-client/agent-session.js';
import { GuestBootContract } from '../guest/boot-contract.js';
import { readBootManifest } from '../guest/boot-assets.js';
import type { GuestKernelReport } from '../core/version.js';
import { ensureSystemImage } from '../guest/system-image.js';
import { CloudHypervisorProvider } from '../providers/cloud-hypervisor/cloud-hypervisor-provider.js';
import { FirecrackerProvider } from '../providers/firecracker/firecracker-provider.js';
import { QemuProvider } from '../providers/qemu/qemu-provider.js';
import { SqliteVmStore } from '../store/sqlite-vm-store.js';
import { SqliteImageStore } from '../store/sqlite-image-store.js';
import { SqliteLeaseStore } from '../store/sqlite-lease-store.js';
import { NatVmNetworks } from '../network/vm-networks.js';
import { openDatabase } from '../store/database.js';
import { ImageOperations } from '../api/image-operations.js';
import { ImageService } from '../images/image-service.js';
import { ImageImporter } from '../images/import/index.js';
import { createRegistrySource, normalizeReference } from '../images/registry-source.js';
import { VmDirectories } from '../store/vm-directories.js';
import { SnapshotDirectories } from '../store/snapshot-directories.js';
import { SqliteSnapshotStore } from '../store/sqlite-snapshot-store.js';
import { hostCpuCount } from '../system/host.js';
import { isAlive, readPidFile } from '../system/process.js';
import type { DaemonSettings } from './settings.js';
import { PodService } from '../core/sandboxes.js';
import { SqliteContainerStore } from '../store/sqlite-container-store.js';
import { ContainerRootfsImages } from '../images/container-rootfs.js';
import { ShimHost } from '../shim/host.js';
import { NetnsPodNetworks } from '../network/pod-network.js';
import { defaultRunner } from '../network/command-runner.js';
import { shimOperations } from '../api/shim-operations.js';
import { emptyMetadata } from '../core/metadata.js';
import { HostMetadataEndpoints } from '../metadata-service/host-endpoints.js';
import { metadataSource } from '../metadata-service/http-answer.js';

class StaticProviderRegistry implements ProviderRegistry {
  constructor(private readonly providers: readonly Provider[]) {}
  get(name: ProviderName): Provider | undefined {
    return this.providers.find((p) => p.name === name);
  }
  all(): readonly Provider[] {
    return this.providers;
  }
}

const CONSOLE_ROTATE_INTERVAL_MS = 5000;
/** containerd gives a shim's delete 5 s: one it made as this daemon came up is on disk by then. */
const PENDING_DELETES_RECHECK_MS = 10_000;
/** Free room in a pod container's root disk for its writes (sparse: it costs nothing until used). */
const POD_ROOTFS_HEADROOM_BYTES = 1024 * 1024 * 1024;
/** What the remote listener needs, checked before the daemon touches anything. */
interface RemotePlan {
  identity?: TlsIdentity;
  hostPaths: HostPathPolicy;
}

/**
 * The root holds workload env (secrets), private image contents and the state database; the run
 * dir holds the API sockets. Only the daemon's user may read them, whatever created them first (a
 * set-up script, an older hypercored) and whatever the caller's umask: the directories are made
 * 0700 at every start, existing database files 0600, and the umask of the daemon (inherited by
 * every VMM it starts) is 077, so each file it or a VMM creates is 0600 and each directory 0700.
 */
async function restrictToOwner(rootDir: string, runDir: string): Promise<void> {
  process.umask(0o077);
  for (const dir of [rootDir, runDir]) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
  }
  for (const name of ['state.db', 'state.db-wal', 'state.db-shm']) {
    await chmod(join(rootDir, name), 0o600).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }
}

/** The default guest kernel, from the manifest set-up wrote next to it. */
async function guestKernel(bootDir: string): Promise<GuestKernelReport> {
  const manifest = await readBootManifest(bootDir);
  if (!manifest) return { bootDir, detail: `no readable manifest.json in ${bootDir}; run scripts/install-boot-assets.sh` };
  return { bootDir, version: manifest.kernelVersion, package: manifest.package, packageVersion: manifest.packageVersion };
}

export class Daemon {
  readonly logger: pino.Logger;
  private store?: SqliteVmStore;
  private service?: VmService;
  private http?: FastifyInstance;
  private grpc?: grpc.Server;
  private socketServer?: NetServer;
  private rotateTimer?: NodeJS.Timeout;
  private logs?: VmLogFiles;
  private shim?: ShimHost;
  private guestMetadata?: HostMetadataEndpoints;
  private pendingDeletesTimer?: NodeJS.Timeout;
  private remote?: RemoteApi;

  constructor(private readonly settings: DaemonSettings, logger?: pino.Logger) {
    this.logger = logger ?? pino({ level: settings.logLevel, base: { pid: process.pid } }, pino.destination(2));
  }

  get pidFile(): string {
    return join(this.settings.runDir, 'hypercored.pid');
  }

  get grpcSocket(): string {
    return join(this.settings.runDir, 'hypercore-grpc.sock');
  }

  async start(): Promise<void> {
    const { rootDir, runDir, socket, bootDir } = this.settings;
    const remote = this.planRemote();
    await restrictToOwner(rootDir, runDir);
    await this.claimPidFile();

    const log = this.logger as unknown as Logger;
    const db = openDatabase(join(rootDir, 'state.db'));
    const vmStore = new SqliteVmStore(db);
    const snapshotStore = new SqliteSnapshotStore(db);
    this.store = vmStore;
    const imagesDir = join(rootDir, 'images');
    // In the order provider = "auto" prefers them.
    const providerList: Provider[] = [new FirecrackerProvider({ logger: log }), new CloudHypervisorProvider({ logger: log }), new QemuProvider({ logger: log, workDir: join(runDir, 'probe'), memoryDir: this.settings.memoryDir })];
    const metrics = new HypercoreMetrics({
      vms: () => vmStore.list(),
      providers: providerList.map((p) => p.name),
      imageCache: () => images.diskUsage(),
    });
    const images = new ImageService({
      dir: imagesDir,
      store: new SqliteImageStore(db),
      registry: createRegistrySource({ insecureRegistries: this.settings.insecureRegistries, maxBlobBytes: this.settings.maxImageBytes }),
      limits: { maxBlobBytes: this.settings.maxImageBytes, maxImageBytes: this.settings.maxImageBytes },
      normalize: normalizeReference,
      // Snapshots read their image's block image too: a prune must keep it while one exists.
      usersOf: (digest) => [...vmStore.list().filter((vm) => vm.imageDigest === digest).map((vm) => vm.name), ...snapshotStore.list().filter((s) => s.imageDigest === digest).map((s) => `snapshot ${s.name}`)],
      logger: log,
      onPulledBytes: (bytes) => metrics.pulledBytes(bytes),
    });
    await images.init();
    const providers = new StaticProviderRegistry(providerList);
    const files = new VmDirectories(rootDir, runDir);
    this.logs = new VmLogFiles((id) => files.paths(id), { consoleBytes: this.settings.consoleLogCapBytes, workloadBytes: this.settings.workloadLogCapBytes });
    const leases = new SqliteLeaseStore(db);
    // The metadata endpoint of NAT guests: the VM is the one that holds the source address (the
    // bridge's anti-spoofing rules vouch for it); its record is read at each request.
    this.guestMetadata = new HostMetadataEndpoints({
      logger: log,
      resolve: (subnet, address) => {
        const lease = leases.all().find((l) => l.subnet === subnet && l.ip === address);
        const vm = lease ? vmStore.get(lease.vmId) : undefined;
        return vm ? metadataSource(vm.spec.metadata ?? emptyMetadata()) : undefined;
      },
    });
    this.service = new VmService({
      store: this.store,
      providers,
      files,
      clock: { now: () => new Date() },
      ids: { newVmId: () => randomBytes(8).toString('hex') },
      logger: log,
      images,
      guest: { rootDisk: async () => (await ensureSystemImage({ cacheDir: join(rootDir, 'guest') })).path },
      agents: new TtrpcAgentConnector((method, seconds, ok) => metrics.agentCall(method, seconds, ok)),
      agentBootTimeoutMs: this.settings.agentTimeoutMs,
      boot: new GuestBootContract(bootDir),
      networks: new NatVmNetworks({ leases, logger: log, scope: rootDir, describeVm: (id) => `VM ${vmStore.get(id)?.name ?? '?'} (${id})`, metadata: this.guestMetadata }),
      workloadLog: this.logs,
      snapshots: { store: snapshotStore, files: new SnapshotDirectories(rootDir) },
      observer: metrics,
    });
    const pods = new PodService({
      vms: this.service,
      containers: new SqliteContainerStore(db),
      rootfs: new ContainerRootfsImages({ dir: join(rootDir, 'pod-rootfs'), maxBytes: this.settings.maxImageBytes, headroomBytes: POD_ROOTFS_HEADROOM_BYTES, keep: 4, logger: log }),
      providers,
      networks: new NetnsPodNetworks(defaultRunner),
      clock: { now: () => new Date() },
      logger: log,
    });
    this.shim = new ShimHost({ pods, vms: this.service, runDir, logger: log });
    await this.service.reconcile();
    const pruned = await this.service.pruneNetworks().catch((err: unknown) => [`network prune failed: ${String(err)}`]);
    if (pruned.length > 0) this.logger.warn({ removed: pruned }, 'removed network leftovers that belong to no VM');

    await this.shim.restore();
    const ops = new VmOperations({ service: this.service, hostCpus: hostCpuCount(), logger: log, guestKernel: () => guestKernel(bootDir) });
    const imageOps = new ImageOperations(images, new ImageImporter(images, normalizeReference, join(imagesDir, 'tmp')));
    const tokens = new ApiTokens(new SqliteTokenStore(db));
    const tokenOps = new TokenOperations(tokens);
    await rm(this.grpcSocket, { force: true });
    const counting = countingInterceptor((path, status) => metrics.apiRequest('grpc', 'local', path, status));
    this.grpc = await startGrpcServer(ops, imageOps, this.grpcSocket, { tokens: tokenOps, options: { interceptors: [counting] } });
    await chmod(this.grpcSocket, 0o600);
    this.http = buildHttpApi(ops, imageOps, { tokens: tokenOps, metrics, listener: 'local', shim: shimOperations(this.shim) });
    await registerProcessSockets(this.http, this.service);
    await this.http.ready();
    this.socketServer = await listenMultiplexed(socket, this.http.server, this.grpcSocket);
    // Shim deletes containerd made while no hypercored answered; again a little later, for one
    // written while this daemon was starting to listen.
    const shim = this.shim;
    void shim.deletePending(socket);
    this.pendingDeletesTimer = setTimeout(() => void shim.deletePending(socket), PENDING_DELETES_RECHECK_MS);
    this.pendingDeletesTimer.unref();

    if (remote) {
      try {
        this.remote = await RemoteApi.start({ ...remote, listen: this.settings.remote.listen, vms: ops, images: imageOps, tokens, metrics, log });
      } catch (err) {
        // A port in use: leave no socket or pidfile behind (VMs keep running, as at any stop).
        await this.stop();
        throw err;
      }
    }
    this.rotateTimer = setInterval(() => void this.rotateConsoleLogs(), CONSOLE_ROTATE_INTERVAL_MS);
    this.rotateTimer.unref();
    this.logger.info({ socket, rootDir, runDir, bootDir, vms: this.store.list().length, ...(this.remote ? { remote: this.remote.addresses, allowHostPaths: this.settings.remote.allowHostPaths, allowBridges: this.settings.remote.allowBridges } : {}) }, 'hypercored ready');
  }

  /**
   * The remote listener's TLS files and allowed directories, loaded and checked first: a bad
   * --tls-dir or --allow-host-path stops the daemon before it changes anything.
   */
  private planRemote(): RemotePlan | undefined {
    const { listen, tlsDir, allowHostPaths, allowBridges } = this.settings.remote;
    if (listen.length === 0) return undefined;
    const identity = listen.some((l) => l.scheme === 'https') && tlsDir ? loadServerIdentity(tlsDir) : undefined;
    return { hostPaths: hostPathsWithin(allowHostPaths, '--allow-host-path', allowBridges), ...(identity ? { identity } : {}) };
  }

  /** Stops serving; VMs keep running and are adopted by the next hypercored. */
  async stop(): Promise<void> {
    if (this.rotateTimer) clearInterval(this.rotateTimer);
    if (this.pendingDeletesTimer) clearTimeout(this.pendingDeletesTimer);
    // The shim first: pod processes whose agent streams close next run on (they are not exits).
    await this.shim?.stop();
    this.service?.detachAll();
    // Remote clients first: stop accepting, end their streams (open ones would keep close() waiting).
    await this.remote?.close();
    await this.guestMetadata?.closeAll();
    await new Promise<void>((resolve) => (this.socketServer ? this.socketServer.close(() => resolve()) : resolve()));
    await this.http?.close();
    this.grpc?.forceShutdown();
    this.store?.close();
    await rm(this.settings.socket, { force: true });
    await rm(this.grpcSocket, { force: true });
    await rm(this.pidFile, { force: true });
    this.logger.info('hypercored stopped; VMs left running');
  }

  /** One daemon per run dir: a second one would fight the first over the same VMs. */
  private async claimPidFile(): Promise<void> {
    const other = await readPidFile(this.pidFile);
    if (other !== undefined && other !== process.pid && (await isAlive(other))) {
      const cmdline = await readFile(`/proc/${other}/cmdline`, 'utf8').catch(() => '');
      if (cmdline.includes('hypercored')) {
        throw new HypercoreError(ErrorCodes.internal, `another hypercored (pid ${other}) already uses ${this.settings.runDir}; stop it first or pass --run-dir`);
      }
    }
    await writeFile(this.pidFile, `${process.pid}\n`, { mode: 0o600 });
  }

  private async rotateConsoleLogs(): Promise<void> {
    if (!this.service) return;
    for (const vm of this.service.list()) {
      if (vm.state !== 'running') continue;
      await this.logs?.rotateConsole(vm).catch((err: unknown) =>
        this.logger.warn({ vmId: vm.id, err: String(err) }, 'console log rotation failed'),
      );
    }
  }
}
