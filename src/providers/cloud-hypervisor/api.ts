/**
 * Cloud Hypervisor's REST API (`/api/v1/<operation>` on the --api-socket) as the provider uses it:
 * every call must answer 2xx, and a refusal carries Cloud Hypervisor's error chain (a JSON list
 * of strings, outermost first), so a refused configuration explains itself.
 */
import { ProviderFailedError } from '../../core/errors.js';
import { UnixHttpClient } from '../shared/unix-http.js';
import { parseCloudHypervisorVersion, type CloudHypervisorVersion } from './version.js';

/** The operations the provider calls. */
export type Operation = 'vmm.ping' | 'vmm.shutdown' | 'vm.create' | 'vm.boot' | 'vm.info' | 'vm.pause' | 'vm.resume' | 'vm.power-button' | 'vm.shutdown';

export interface ApiRequest {
  method: 'PUT' | 'GET';
  operation: Operation;
  body?: unknown;
}

/** The VM's states as vm.info reports them; `NotCreated` when the VMM has no VM (vm.info answers 404). */
export type VmState = 'NotCreated' | 'Created' | 'Running' | 'Shutdown' | 'Paused' | 'BreakPoint';
const STATES: readonly VmState[] = ['Created', 'Running', 'Shutdown', 'Paused', 'BreakPoint'];

/** Cloud Hypervisor refused a request (non-2xx). */
export class CloudHypervisorApiError extends ProviderFailedError {
  constructor(
    readonly request: ApiRequest,
    readonly status: number,
    readonly reason: string,
  ) {
    super(`Cloud Hypervisor refused ${request.method} ${request.operation} (HTTP ${status}): ${reason}`);
  }
}

/** The error chain of a refusal as one line: `["a","b"]` → `a: b`; any other body as text. */
function refusalReason(body: unknown, text: string): string {
  if (Array.isArray(body) && body.every((m) => typeof m === 'string')) return body.join(': ').slice(0, 1000);
  return text.slice(0, 500);
}

export class CloudHypervisorApi {
  private readonly http: UnixHttpClient;

  constructor(socketPath: string, options: { timeoutMs?: number } = {}) {
    // vm.info echoes the whole configuration; a few KiB for Hypercore's VMs.
    this.http = new UnixHttpClient(socketPath, { ...options, maxReplyBytes: 256 * 1024 });
  }

  async send(request: ApiRequest): Promise<unknown> {
    const reply = await this.http.call(request.method, `/api/v1/${request.operation}`, request.body);
    if (reply.status >= 200 && reply.status < 300) return reply.body;
    throw new CloudHypervisorApiError(request, reply.status, refusalReason(reply.body, reply.text) || 'no reason given');
  }

  /** The VMM's version from vmm.ping (`build_version` when present: it is what --version prints). */
  async version(): Promise<CloudHypervisorVersion> {
    const body = await this.send({ method: 'GET', operation: 'vmm.ping' });
    const fields = body && typeof body === 'object' ? (body as Record<string, unknown>) : {};
    const text = String(fields['build_version'] ?? fields['version'] ?? '');
    const version = parseCloudHypervisorVersion(text) ?? parseCloudHypervisorVersion(String(fields['version'] ?? ''));
    if (!version) throw new ProviderFailedError(`Cloud Hypervisor's vmm.ping answered ${JSON.stringify(text.slice(0, 60))}, not a version`);
    return version;
  }

  async state(): Promise<VmState> {
    let body: unknown;
    try {
      body = await this.send({ method: 'GET', operation: 'vm.info' });
    } catch (err) {
      if (err instanceof CloudHypervisorApiError && err.status === 404) return 'NotCreated';
      throw err;
    }
    const state = body && typeof body === 'object' && 'state' in body ? String(body.state) : '';
    const known = STATES.find((s) => s === state);
    if (!known) throw new ProviderFailedError(`Cloud Hypervisor's vm.info reported an unknown state ${JSON.stringify(state.slice(0, 40))}`);
    return known;
  }
}
