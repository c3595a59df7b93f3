/**
 * The API's operations, written once and called by both transports (gRPC and HTTP/JSON), so the two
 * cannot drift apart: same names, same fields, same validation, same errors.
 */
import { InvalidArgumentError } from '../core/errors.js';
import type { Logger, ProviderReport } from '../core/ports.js';
import type { Vm, VmEvent } from '../core/vm.js';
import { HYPERCORE_VERSION, type GuestKernelReport, type VersionReport } from '../core/version.js';
import { DEFAULT_STOP_TIMEOUT_MS, type VmService } from '../core/vm-service.js';
import { readConsoleLog } from '../providers/console-log.js';
import { validateVmSpec } from './spec-validation.js';

export interface ApiContext {
  service: VmService;
  hostCpus: number;
  logger: Logger;
  /** The default guest kernel, for Version (the daemon reads its boot dir's manifest). */
  guestKernel?: () => Promise<GuestKernelReport>;
}

export interface StopVmRequest {
  id: string;
  timeoutSeconds?: number;
  force?: boolean;
}

const MAX_STOP_TIMEOUT_S = 3600;

function requireId(id: unknown): string {
  if (typeof id !== 'string' || id.length === 0) throw new InvalidArgumentError('id is required (a VM id, unique id prefix, or name)', [{ path: 'id', message: 'required' }]);
  return id;
}

export class VmOperations {
  constructor(private readonly ctx: ApiContext) {}

  /** The service, for the streaming operations (exec, attach) that relay IO. */
  get service(): VmService {
    return this.ctx.service;
  }

  createVm(req: { spec?: unknown; detach?: boolean }): Promise<Vm> {
    const spec = validateVmSpec(req.spec, this.ctx.hostCpus);
    return this.ctx.service.create(spec, { detach: req.detach === true });
  }

  getVm(req: { id?: string }): Vm {
    return this.ctx.service.get(requireId(req.id));
  }

  listVms(): { vms: Vm[] } {
    return { vms: this.ctx.service.list() };
  }

  startVm(req: { id?: string }): Promise<Vm> {
    return this.ctx.service.start(requireId(req.id));
  }

  pauseVm(req: { id?: string }): Promise<Vm> {
    return this.ctx.service.pause(requireId(req.id));
  }

  resumeVm(req: { id?: string }): Promise<Vm> {
    return this.ctx.service.resume(requireId(req.id));
  }

  stopVm(req: Partial<StopVmRequest>): Promise<Vm> {
    const timeout = req.timeoutSeconds;
    if (timeout !== undefined && (!Number.isInteger(timeout) || timeout < 0 || timeout > MAX_STOP_TIMEOUT_S)) {
      throw new InvalidArgumentError(`timeoutSeconds = ${String(timeout)}: must be an integer from 0 to ${MAX_STOP_TIMEOUT_S}`, [
        { path: 'timeoutSeconds', message: `an integer from 0 to ${MAX_STOP_TIMEOUT_S}`, value: timeout },
      ]);
    }
    return this.ctx.service.stop(requireId(req.id), {
      timeoutMs: timeout === undefined ? DEFAULT_STOP_TIMEOUT_MS : timeout * 1000,
      force: req.force === true,
    });
  }

  async deleteVm(req: { id?: string; force?: boolean }): Promise<Record<string, never>> {
    await this.ctx.service.delete(requireId(req.id), { force: req.force === true });
    return {};
  }

  async pruneNetworks(): Promise<{ removed: string[] }> {
    return { removed: await this.ctx.service.pruneNetworks() };
  }

  async doctor(): Promise<{ problems: string[]; providers: ProviderReport[] }> {
    return { problems: this.ctx.service.doctor(), providers: await this.ctx.service.providerReports() };
  }

  async version(): Promise<VersionReport> {
    const [providers, guestKernel] = await Promise.all([this.ctx.service.providerReports(), this.ctx.guestKernel?.() ?? { bootDir: '', detail: 'this hypercored has no default guest kernel configured' }]);
    return { version: HYPERCORE_VERSION, nodeVersion: process.version, providers, guestKernel };
  }

  watchEvents(listener: (event: VmEvent) => void): () => void {
    return this.ctx.service.events.subscribe(listener);
  }

  /** Resolves the VM first, so an unknown id fails before any stream starts. */
  streamLogs(req: { id?: string; follow?: boolean }, signal: AbortSignal): AsyncGenerator<Buffer> {
    const vm = this.ctx.service.get(requireId(req.id));
    const path = this.ctx.service.paths(vm).consoleLog;
    return readConsoleLog(path, { follow: req.follow === true, signal });
  }
}
