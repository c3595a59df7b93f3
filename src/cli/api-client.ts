/**
 * The CLI's client of the daemon's HTTP/JSON API, over the unix socket or a remote listener, on
 * node's own http and https modules: they are loaded with node already, where an HTTP library would
 * cost the CLI's start-up more than the call itself. One kept-alive connection serves a command's
 * calls; https is loaded only for a remote daemon.
 */
import { Agent, request, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import type { ApiToken } from '../core/api-token.js';
import { ErrorCodes, HypercoreError, type ErrorCode, type ValidationIssue } from '../core/errors.js';
import type { MetadataValues } from '../core/metadata.js';
import type { ProviderReport } from '../core/ports.js';
import type { Vm, VmSpec } from '../core/vm.js';
import type { VersionReport } from '../core/version.js';
import type { SnapshotView } from '../api/operations.js';
import type { Image, PullProgress } from '../core/image.js';
import { remoteUnavailable, type Endpoint } from './endpoint.js';

/** An error the daemon returned: its code, message and details, as the daemon put them. */
export class ApiError extends HypercoreError {
  constructor(
    readonly httpStatus: number,
    code: ErrorCode,
    message: string,
    details: readonly ValidationIssue[],
  ) {
    super(code, message, { details });
  }
}

interface ErrorPayload {
  error?: { code?: string; message?: string; details?: ValidationIssue[] };
}

/** Why the daemon cannot be reached, for the connection errors that say so; undefined for others. */
export function daemonUnavailable(code: string | undefined, socketPath: string): string | undefined {
  if (code === 'ENOENT' || code === 'ECONNREFUSED') return `hypercored is not running (nothing listens on ${socketPath}); start it with \`hypercored &\` (as root), or point --socket / HYPERCORE_SOCKET at a running one`;
  if (code === 'EACCES' || code === 'EPERM') return `permission denied on ${socketPath}: the API socket is mode 0600, for the daemon's user only (whoever can use it is root on the host); run hypercore as that user`;
  return undefined;
}

/** A response: its status and body stream. */
interface Response {
  statusCode: number;
  body: IncomingMessage;
}

/** Largest JSON body the client reads (1000 VMs are well under 4 MiB); more is the daemon misbehaving. */
const MAX_JSON_BYTES = 64 * 1024 * 1024;

async function readText(body: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > MAX_JSON_BYTES) {
      body.destroy();
      throw new HypercoreError(ErrorCodes.internal, `the daemon's answer is larger than ${MAX_JSON_BYTES} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A remote daemon's TCP connect and TLS handshake must come within this (a unix socket answers at once). */
const REMOTE_CONNECT_TIMEOUT_MS = 30_000;

/** How to reach the endpoint: its request function, agent and the options each request starts from. */
interface Transport {
  request: (options: RequestOptions, onResponse: (res: IncomingMessage) => void) => ClientRequest;
  agent: Agent;
  options: RequestOptions & { headers: Record<string, string> };
}

async function transportOf(endpoint: Endpoint): Promise<Transport> {
  if (endpoint.kind === 'unix') {
    return { request, agent: new Agent({ keepAlive: true, maxSockets: 4 }), options: { socketPath: endpoint.socketPath, headers: { host: 'localhost' } } };
  }
  const options = { host: endpoint.host, port: Number(new URL(endpoint.origin).port), headers: endpoint.token ? { authorization: `Bearer ${endpoint.token}` } : ({} as Record<string, string>) };
  if (!endpoint.secure) return { request, agent: new Agent({ keepAlive: true, maxSockets: 4 }), options };
  const https = await import('node:https');
  const tls = endpoint.tls;
  const agent = new https.Agent({ keepAlive: true, maxSockets: 4, ...(tls ? { ca: tls.ca, ...(tls.cert && tls.key ? { cert: tls.cert, key: tls.key } : {}) } : {}) });
  return { request: https.request, agent, options };
}

/** Fails a request whose new connection (TCP, then TLS for https) is not up within `ms`; a reused one is. */
function boundConnect(req: ClientRequest, ms: number, secure: boolean): void {
  req.once('socket', (socket) => {
    if (!socket.connecting) return;
    const timer = setTimeout(() => req.destroy(Object.assign(new Error(`no connection within ${ms} ms`), { code: 'ETIMEDOUT' })), ms);
    const clear = (): void => clearTimeout(timer);
    socket.once(secure ? 'secureConnect' : 'connect', clear);
    socket.once('close', clear);
  });
}

export class ApiClient {
  readonly endpoint: Endpoint;
  private transport?: Promise<Transport>;

  /** A socket path, or any endpoint (see endpoint.ts). */
  constructor(target: string | Endpoint) {
    this.endpoint = typeof target === 'string' ? { kind: 'unix', socketPath: target } : target;
  }

  private async call<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
    const res = await this.send(method, path, body);
    const text = await readText(res.body);
    const payload: unknown = text ? JSON.parse(text) : {};
    if (res.statusCode >= 400) throw this.toError(res.statusCode, payload as ErrorPayload);
    return payload as T;
  }

  private async send(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<Response> {
    const t = await (this.transport ??= transportOf(this.endpoint));
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const headers = { ...t.options.headers, ...(data ? { 'content-type': 'application/json', 'content-length': String(data.length) } : {}) };
      const req = t.request({ ...t.options, agent: t.agent, method, path, headers }, (res) => resolve({ statusCode: res.statusCode ?? 500, body: res }));
      if (this.endpoint.kind === 'remote') boundConnect(req, REMOTE_CONNECT_TIMEOUT_MS, this.endpoint.secure);
      req.on('error', (err: NodeJS.ErrnoException) => reject(this.connectError(err)));
      req.end(data);
    });
  }

  /** Why the daemon cannot be reached, for the connection errors that say so; the error itself otherwise. */
  private connectError(err: NodeJS.ErrnoException): Error {
    if (this.endpoint.kind === 'remote') return remoteUnavailable(this.endpoint, err.code, err.message) ?? err;
    const unavailable = daemonUnavailable(err.code, this.endpoint.socketPath);
    return unavailable ? new HypercoreError(ErrorCodes.daemonUnavailable, unavailable, { cause: err }) : err;
  }

  private toError(status: number, payload: ErrorPayload): ApiError {
    const e = payload.error ?? {};
    return new ApiError(status, (e.code ?? ErrorCodes.internal) as ErrorCode, e.message ?? `HTTP ${status}`, e.details ?? []);
  }

  /** `start: false` defines the VM without booting it. */
  createVm(spec: VmSpec, options: { detach?: boolean; start?: boolean } = {}): Promise<Vm> {
    return this.call('POST', '/v1/vms', { spec, ...(options.detach ? { detach: true } : {}), ...(options.start === false ? { start: false } : {}) });
  }
  async listVms(): Promise<Vm[]> {
    return (await this.call<{ vms: Vm[] }>('GET', '/v1/vms')).vms;
  }
  getVm(id: string): Promise<Vm> {
    return this.call('GET', `/v1/vms/${encodeURIComponent(id)}`);
  }
  startVm(id: string): Promise<Vm> {
    return this.call('POST', `/v1/vms/${encodeURIComponent(id)}/start`);
  }
  createSnapshot(id: string, options: { name?: string; leavePaused?: boolean }): Promise<SnapshotView> {
    return this.call('POST', `/v1/vms/${encodeURIComponent(id)}/snapshots`, options);
  }
  async listSnapshots(): Promise<SnapshotView[]> {
    return (await this.call<{ snapshots: SnapshotView[] }>('GET', '/v1/snapshots')).snapshots;
  }
  async deleteSnapshot(id: string): Promise<void> {
    await this.call('DELETE', `/v1/snapshots/${encodeURIComponent(id)}`);
  }
  spawnFromSnapshot(id: string, name: string | undefined): Promise<Vm> {
    return this.call('POST', `/v1/snapshots/${encodeURIComponent(id)}/spawn`, name === undefined ? {} : { name });
  }
  async cloneVm(id: string, count: number): Promise<Vm[]> {
    return (await this.call<{ vms: Vm[] }>('POST', `/v1/vms/${encodeURIComponent(id)}/clone`, { count })).vms;
  }
  pauseVm(id: string): Promise<Vm> {
    return this.call('POST', `/v1/vms/${encodeURIComponent(id)}/pause`);
  }
  resumeVm(id: string): Promise<Vm> {
    return this.call('POST', `/v1/vms/${encodeURIComponent(id)}/resume`);
  }
  stopVm(id: string, options: { timeoutSeconds?: number; force?: boolean }): Promise<Vm> {
    return this.call('POST', `/v1/vms/${encodeURIComponent(id)}/stop`, options);
  }
  async deleteVm(id: string, force: boolean): Promise<void> {
    await this.call('DELETE', `/v1/vms/${encodeURIComponent(id)}${force ? '?force=true' : ''}`);
  }

  /** Streams the console log to `out`; resolves when the daemon ends the stream. */
  async streamLogs(id: string, follow: boolean, out: NodeJS.WritableStream): Promise<void> {
    const res = await this.send('GET', `/v1/vms/${encodeURIComponent(id)}/logs${follow ? '?follow=true' : ''}`);
    if (res.statusCode >= 400) throw this.toError(res.statusCode, JSON.parse(await readText(res.body)) as ErrorPayload);
    for await (const chunk of res.body) {
      if (!out.write(chunk as Buffer)) await new Promise((r) => out.once('drain', r));
    }
  }

  /** Reads an NDJSON progress stream; a line with `error` ends it with that error. */
  private async progressCall(path: string, body: unknown, onProgress: (p: PullProgress) => void): Promise<Image> {
    const res = await this.send('POST', path, body);
    if (res.statusCode >= 400) throw this.toError(res.statusCode, JSON.parse(await readText(res.body)) as ErrorPayload);
    let buffered = '';
    let image: Image | undefined;
    for await (const chunk of res.body) {
      buffered += (chunk as Buffer).toString('utf8');
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (!line.trim()) continue;
        const message = JSON.parse(line) as PullProgress & { image?: Image } & ErrorPayload;
        if (message.error) throw this.toError(500, message);
        if (message.image) image = message.image;
        onProgress(message);
      }
    }
    if (!image) throw new HypercoreError(ErrorCodes.internal, 'the daemon ended the stream without a result');
    return image;
  }

  pullImage(reference: string, platform: string | undefined, onProgress: (p: PullProgress) => void): Promise<Image> {
    return this.progressCall('/v1/images/pull', { reference, ...(platform ? { platform } : {}) }, onProgress);
  }
  importImage(path: string, reference: string | undefined, onProgress: (p: PullProgress) => void): Promise<Image> {
    return this.progressCall('/v1/images/import', { path, ...(reference ? { reference } : {}) }, onProgress);
  }
  async listImages(): Promise<Image[]> {
    return (await this.call<{ images: Image[] }>('GET', '/v1/images')).images;
  }
  getImage(reference: string): Promise<Image> {
    return this.call('GET', `/v1/images/${reference}`);
  }
  async deleteImage(reference: string, force: boolean): Promise<void> {
    await this.call('DELETE', `/v1/images/${reference}${force ? '?force=true' : ''}`);
  }
  pruneImages(all: boolean): Promise<{ deleted: string[]; reclaimedBytes: number }> {
    return this.call('POST', '/v1/images/prune', { all });
  }

  getMetadata(id: string, key?: string): Promise<MetadataValues> {
    return this.call('GET', `/v1/vms/${encodeURIComponent(id)}/metadata${key === undefined ? '' : `/${encodeURIComponent(key)}`}`);
  }
  setMetadata(id: string, values: Record<string, string>, secret: boolean): Promise<MetadataValues> {
    return this.call('POST', `/v1/vms/${encodeURIComponent(id)}/metadata`, { values, ...(secret ? { secret: true } : {}) });
  }

  pruneNetworks(): Promise<{ removed: string[] }> {
    return this.call('POST', '/v1/network/prune');
  }
  doctor(): Promise<{ problems: string[]; providers: ProviderReport[] }> {
    return this.call('GET', '/v1/doctor');
  }
  version(): Promise<VersionReport> {
    return this.call('GET', '/v1/version');
  }

  createToken(scope: string, name: string | undefined): Promise<{ token: ApiToken; secret: string }> {
    return this.call('POST', '/v1/tokens', { scope, ...(name !== undefined ? { name } : {}) });
  }
  async listTokens(): Promise<ApiToken[]> {
    return (await this.call<{ tokens: ApiToken[] }>('GET', '/v1/tokens')).tokens;
  }
  revokeToken(id: string): Promise<ApiToken> {
    return this.call('DELETE', `/v1/tokens/${encodeURIComponent(id)}`);
  }

  async close(): Promise<void> {
    if (this.transport) (await this.transport).agent.destroy();
  }
}
