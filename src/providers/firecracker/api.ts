/**
 * Firecracker's REST API as the provider uses it: every call must answer 2xx, and an error carries
 * Firecracker's `fault_message`, so a refused configuration explains itself.
 */
import { ProviderFailedError } from '../../core/errors.js';
import { UnixHttpClient } from '../shared/unix-http.js';
import { parseFirecrackerVersion, type FirecrackerVersion } from './version.js';

/** One API request of the configuration sequence. */
export interface ApiRequest {
  method: 'PUT' | 'PATCH' | 'GET';
  path: string;
  body?: unknown;
}

/** Firecracker refused a request (non-2xx). */
export class FirecrackerApiError extends ProviderFailedError {
  constructor(
    readonly request: ApiRequest,
    readonly status: number,
    readonly faultMessage: string,
  ) {
    super(`Firecracker refused ${request.method} ${request.path} (HTTP ${status}): ${faultMessage}`);
  }
}

/** Firecracker's instance states as `GET /` reports them. */
export type InstanceState = 'Not started' | 'Running' | 'Paused';

export class FirecrackerApi {
  private readonly http: UnixHttpClient;

  constructor(socketPath: string, options: { timeoutMs?: number } = {}) {
    this.http = new UnixHttpClient(socketPath, { ...options, maxReplyBytes: 256 * 1024 });
  }

  async send(request: ApiRequest): Promise<unknown> {
    const reply = await this.http.call(request.method, request.path, request.body);
    if (reply.status >= 200 && reply.status < 300) return reply.body;
    const fault = reply.body && typeof reply.body === 'object' && 'fault_message' in reply.body ? String(reply.body.fault_message) : reply.text.slice(0, 500);
    throw new FirecrackerApiError(request, reply.status, fault || 'no fault message');
  }

  async version(): Promise<FirecrackerVersion> {
    const body = await this.send({ method: 'GET', path: '/version' });
    const text = body && typeof body === 'object' && 'firecracker_version' in body ? String(body.firecracker_version) : '';
    const version = parseFirecrackerVersion(text);
    if (!version) throw new ProviderFailedError(`Firecracker's GET /version answered ${JSON.stringify(text.slice(0, 60))}, not a version`);
    return version;
  }

  async state(): Promise<InstanceState> {
    const body = await this.send({ method: 'GET', path: '/' });
    const state = body && typeof body === 'object' && 'state' in body ? String(body.state) : '';
    if (state !== 'Not started' && state !== 'Running' && state !== 'Paused') throw new ProviderFailedError(`Firecracker's GET / reported an unknown state ${JSON.stringify(state.slice(0, 40))}`);
    return state;
  }
}
