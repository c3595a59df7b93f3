/**
 * The Hypercore client: one method per API operation (named as the document's operationIds),
 * typed by the document's schemas, with streams as Node streams and async iterators.
 *
 *   const hc = new HypercoreClient({ socketPath: '/run/hypercore/hypercore.sock' });
 *   const vm = await hc.createVm({ name: 'web', image: 'alpine' });
 *   for await (const event of hc.watchEvents()) ...
 */
import { Connection, ndjson, type ConnectionOptions } from './connection.js';
import { errorFromBody, InvalidArgumentError } from './errors.js';
import { GuestProcess } from './process.js';
import type {
  ApiToken,
  CreateSnapshotOptions,
  CreateTokenRequest,
  CreateTokenResponse,
  CreateVmFromHacFileOptions,
  DoctorResponse,
  ExecStart,
  Image,
  PruneImagesResponse,
  PruneNetworksResponse,
  PullImageProgress,
  SetMetadataRequest,
  Snapshot,
  StopVmOptions,
  Vm,
  VersionResponse,
  VmEvent,
  VmMetadata,
  VmSpec,
} from './types.js';
import type { WebSocket } from 'ws';

const at = (id: string): string => encodeURIComponent(id);
const query = (flags: Record<string, boolean | undefined>): string => {
  const set = Object.entries(flags).filter(([, v]) => v);
  return set.length ? `?${set.map(([k]) => `${k}=true`).join('&')}` : '';
};

/**
 * An image reference is the rest of the path: its '/' and ':' stay as they are; anything that could
 * leave the path is refused before sending, as the daemon refuses a bad argument (InvalidArgumentError).
 */
function imagePath(reference: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._\-/:@+]*$/.test(reference) || reference.split('/').some((part) => part === '..' || part === '.')) {
    throw new InvalidArgumentError('HC_INVALID_ARGUMENT', `image reference ${JSON.stringify(reference)}: not a reference`, 0);
  }
  return `/v1/images/${reference}`;
}

export interface StreamOptions {
  /** Ends the stream (the iterator finishes) when aborted. */
  signal?: AbortSignal;
}

export class HypercoreClient {
  private readonly connection: Connection;

  constructor(options: ConnectionOptions) {
    this.connection = new Connection(options);
  }

  // VMs

  /** Creates a VM and boots it; with `start: false`, only defines it (state `created`). */
  createVm(spec: VmSpec, options: { start?: boolean; detach?: boolean } = {}): Promise<Vm> {
    return this.connection.call('POST', '/v1/vms', { spec, ...options });
  }
  /**
   * Creates a VM from the text of a hac.toml (the daemon reads and checks it: each problem comes
   * back as a ConfigInvalidError naming its hac.toml:line:column); boots it unless `start: false`.
   */
  createVmFromHac(hac: string, options: { start?: boolean } = {}): Promise<Vm> {
    return this.connection.call('POST', '/v1/vms/hac', { hac, ...options });
  }
  /**
   * Local socket only: creates a VM from the text of the hac.toml file `options.file` of the
   * daemon's host, read as `hypercore spawn` reads it (relative paths from its directory, the files
   * it names checked, `overrides` as the CLI's flags); `pull: false` fails with ImageNotFound
   * instead of pulling.
   */
  createVmFromHacFile(hac: string, options: CreateVmFromHacFileOptions): Promise<Vm> {
    return this.connection.call('POST', '/v1/vms/hac-file', { hac, ...options });
  }
  async listVms(): Promise<Vm[]> {
    return (await this.connection.call<{ vms?: Vm[] }>('GET', '/v1/vms')).vms ?? [];
  }
  getVm(id: string): Promise<Vm> {
    return this.connection.call('GET', `/v1/vms/${at(id)}`);
  }
  startVm(id: string): Promise<Vm> {
    return this.connection.call('POST', `/v1/vms/${at(id)}/start`);
  }
  stopVm(id: string, options: StopVmOptions = {}): Promise<Vm> {
    return this.connection.call('POST', `/v1/vms/${at(id)}/stop`, options);
  }
  pauseVm(id: string): Promise<Vm> {
    return this.connection.call('POST', `/v1/vms/${at(id)}/pause`);
  }
  resumeVm(id: string): Promise<Vm> {
    return this.connection.call('POST', `/v1/vms/${at(id)}/resume`);
  }
  async deleteVm(id: string, options: { force?: boolean } = {}): Promise<void> {
    await this.connection.call('DELETE', `/v1/vms/${at(id)}${query(options)}`);
  }
  async cloneVm(id: string, count = 1): Promise<Vm[]> {
    return (await this.connection.call<{ vms?: Vm[] }>('POST', `/v1/vms/${at(id)}/clone`, { count })).vms ?? [];
  }

  /** The serial console output; with `follow`, goes on as the guest writes until aborted or the VM stops. */
  async *streamLogs(id: string, options: StreamOptions & { follow?: boolean } = {}): AsyncGenerator<Buffer> {
    yield* await this.connection.stream('GET', `/v1/vms/${at(id)}/logs${query({ follow: options.follow })}`, undefined, options.signal);
  }

  /** VM events (created, state-changed, deleted) as they happen, until aborted or the loop breaks. */
  async *watchEvents(options: StreamOptions = {}): AsyncGenerator<VmEvent> {
    yield* ndjson<VmEvent>(await this.connection.stream('GET', '/v1/events', undefined, options.signal));
  }

  /** Runs a command in the guest; its stdin, stdout and stderr are Node streams. */
  async exec(id: string, start: Omit<ExecStart, 'id'>): Promise<GuestProcess> {
    const socket = await this.connection.openWebSocket(`/v1/vms/${at(id)}/exec`);
    const process = new GuestProcess(socket);
    socket.send(JSON.stringify({ start }));
    return process;
  }

  /** Attaches to the workload's main process; `fromStart` replays its output from the beginning. */
  async attach(id: string, options: { fromStart?: boolean } = {}): Promise<GuestProcess> {
    return new GuestProcess(await this.connection.openWebSocket(`/v1/vms/${at(id)}/attach${query(options)}`));
  }

  /**
   * The VM's serial console (ttyS0, QEMU VMs) as a raw WebSocket: binary messages are console
   * bytes both ways; a text message from the daemon is an `{"error": ...}` (e.g. another client
   * holds the console). It comes paused, so that nothing is missed: put the handlers on, then call
   * `resume()`. Close it to leave; the VM runs on.
   */
  serialConsole(id: string): Promise<WebSocket> {
    return this.connection.openWebSocket(`/v1/vms/${at(id)}/serial`);
  }

  // Metadata (image VMs; the guest reads it at http://169.254.169.254/v1/metadata)

  /** The VM's metadata values (secrets shown as "<secret>"); with `key`, that key's alone. */
  getMetadata(id: string, key?: string): Promise<VmMetadata> {
    return this.connection.call('GET', `/v1/vms/${at(id)}/metadata${key === undefined ? '' : `/${at(key)}`}`);
  }
  /** Sets (or, with an empty value, removes) metadata keys; `secret` hides the values from reads. Resolves with the metadata after the change. */
  setMetadata(id: string, values: Record<string, string>, options: Omit<SetMetadataRequest, 'values'> = {}): Promise<VmMetadata> {
    return this.connection.call('POST', `/v1/vms/${at(id)}/metadata`, { values, ...options });
  }

  // Snapshots

  createSnapshot(vmId: string, options: CreateSnapshotOptions = {}): Promise<Snapshot> {
    return this.connection.call('POST', `/v1/vms/${at(vmId)}/snapshots`, options);
  }
  async listSnapshots(): Promise<Snapshot[]> {
    return (await this.connection.call<{ snapshots?: Snapshot[] }>('GET', '/v1/snapshots')).snapshots ?? [];
  }
  getSnapshot(id: string): Promise<Snapshot> {
    return this.connection.call('GET', `/v1/snapshots/${at(id)}`);
  }
  async deleteSnapshot(id: string): Promise<void> {
    await this.connection.call('DELETE', `/v1/snapshots/${at(id)}`);
  }
  restoreSnapshot(id: string, options: { name?: string } = {}): Promise<Vm> {
    return this.connection.call('POST', `/v1/snapshots/${at(id)}/spawn`, options);
  }

  // Images

  /** Pull progress messages as they come; the last one (phase `done`) carries the image. */
  async *pullImageProgress(reference: string, options: StreamOptions & { platform?: string } = {}): AsyncGenerator<PullImageProgress> {
    yield* ndjson<PullImageProgress>(await this.connection.stream('POST', '/v1/images/pull', { reference, ...(options.platform ? { platform: options.platform } : {}) }, options.signal));
  }
  /** Pulls an image, reporting progress to `onProgress`; resolves with the image. */
  pullImage(reference: string, options: { platform?: string; onProgress?: (p: PullImageProgress) => void } = {}): Promise<Image> {
    return lastImage(this.pullImageProgress(reference, options.platform ? { platform: options.platform } : {}), options.onProgress);
  }
  /** Imports a `docker save` or OCI layout tar from a path on the daemon's host. */
  importImage(path: string, options: { reference?: string; onProgress?: (p: PullImageProgress) => void } = {}): Promise<Image> {
    const body = { path, ...(options.reference ? { reference: options.reference } : {}) };
    return lastImage(
      (async function* (c: Connection) {
        yield* ndjson<PullImageProgress>(await c.stream('POST', '/v1/images/import', body));
      })(this.connection),
      options.onProgress,
    );
  }
  async listImages(): Promise<Image[]> {
    return (await this.connection.call<{ images?: Image[] }>('GET', '/v1/images')).images ?? [];
  }
  getImage(reference: string): Promise<Image> {
    return this.connection.call('GET', imagePath(reference));
  }
  async deleteImage(reference: string, options: { force?: boolean } = {}): Promise<void> {
    await this.connection.call('DELETE', `${imagePath(reference)}${query(options)}`);
  }
  pruneImages(options: { all?: boolean } = {}): Promise<PruneImagesResponse> {
    return this.connection.call('POST', '/v1/images/prune', options);
  }

  // Tokens (admin scope on the remote listener)

  /** `scope`: read, write or admin (the daemon refuses others, naming them). */
  createToken(scope: NonNullable<CreateTokenRequest['scope']>, name?: string): Promise<CreateTokenResponse> {
    return this.connection.call('POST', '/v1/tokens', { scope, ...(name !== undefined ? { name } : {}) });
  }
  async listTokens(): Promise<ApiToken[]> {
    return (await this.connection.call<{ tokens?: ApiToken[] }>('GET', '/v1/tokens')).tokens ?? [];
  }
  revokeToken(id: string): Promise<ApiToken> {
    return this.connection.call('DELETE', `/v1/tokens/${at(id)}`);
  }

  // Host

  /** The daemon's version, each hypervisor's and the default guest kernel's. */
  version(): Promise<VersionResponse> {
    return this.connection.call('GET', '/v1/version');
  }
  doctor(): Promise<DoctorResponse> {
    return this.connection.call('GET', '/v1/doctor');
  }
  pruneNetworks(): Promise<PruneNetworksResponse> {
    return this.connection.call('POST', '/v1/network/prune');
  }
  /** The OpenAPI document the daemon serves (the one the SDK's types come from). */
  openApi(): Promise<Record<string, unknown>> {
    return this.connection.call('GET', '/openapi.json');
  }

  /** Closes the client's connections (open streams end). */
  close(): Promise<void> {
    return this.connection.close();
  }
}

async function lastImage(progress: AsyncIterable<PullImageProgress>, onProgress?: (p: PullImageProgress) => void): Promise<Image> {
  let image: Image | undefined;
  for await (const p of progress) {
    if (p.image) image = p.image;
    onProgress?.(p);
  }
  if (!image) throw errorFromBody(200, { error: { code: 'HC_INTERNAL', message: 'the daemon ended the progress stream without the image' } });
  return image;
}
