/**
 * The VM service: every use case (create, start, stop, delete, reconcile) lives here, written
 * against ports only. The API transports call it; the daemon wires real adapters into it.
 */
import { EventHub } from './event-hub.js';
import { asHypercoreError, ErrorCodes, HypercoreError, ProviderUnavailableError, VmAmbiguousError, VmNameTakenError, VmNotFoundError, VmStateConflictError } from './errors.js';
import { KeyedLock } from './keyed-lock.js';
import { assertTransition, hasVmm } from './lifecycle.js';
import { runPlan, type PlanStep } from './plan.js';
import type { NetworkAttachment, VmNetworks } from './ports.js';
import type { Clock, GuestSystem, IdGenerator, ImageProvisioner, Logger, Provider, ProviderRegistry, VmFiles, VmmExit, VmPaths, VmStore } from './ports.js';
import type { Image, PullProgress } from './image.js';
import type { AgentConnector, ExitStatus, ProcessIo, ProcessSpec } from './agent.js';
import { AgentSupervisor, MAIN_PROCESS, type WorkloadLog } from './agent-supervisor.js';
import type { ProviderName, Vm, VmError, VmEvent, VmSpec, VmState } from './vm.js';

export interface VmServiceDeps {
  store: VmStore;
  providers: ProviderRegistry;
  files: VmFiles;
  clock: Clock;
  ids: IdGenerator;
  logger: Logger;
  /** Needed for specs with an `image`; without it such specs are refused. */
  images?: ImageProvisioner;
  /** Needed for VMs whose workload is an image (no `drive`): the guest system image and its agent. */
  guest?: GuestSystem;
  agents?: AgentConnector;
  workloadLog?: WorkloadLog;
  /** How long a booting guest's agent may take to answer. */
  agentBootTimeoutMs?: number;
  /** Needed for specs with a `network`. */
  networks?: VmNetworks;
}

export interface CreateOptions {
  onProgress?: (p: PullProgress) => void;
  /** Return once the VMM runs, without waiting for the agent and the workload. */
  detach?: boolean;
}

export interface StopOptions {
  /** How long the guest gets to power off before the VMM is killed. */
  timeoutMs: number;
  /** Skip the graceful phase. */
  force: boolean;
}

export const DEFAULT_STOP_TIMEOUT_MS = 10_000;

export class VmService {
  readonly events = new EventHub();
  private readonly lock = new KeyedLock();
  private readonly watchers = new Map<string, () => void>();
  private readonly supervisor?: AgentSupervisor;

  constructor(private readonly deps: VmServiceDeps) {
    if (deps.agents && deps.workloadLog) {
      this.supervisor = new AgentSupervisor(deps.agents, deps.workloadLog, deps.logger, (vmId, status) => {
        // The workload ended: record how, and power the VM off, as a container stops with its main process.
        void this.lock
          .run(vmId, async () => {
            const vm = deps.store.get(vmId);
            if (vm) deps.store.update({ ...vm, workloadExit: status, updatedAt: deps.clock.now().toISOString() });
          })
          .then(() => this.stop(vmId, { timeoutMs: DEFAULT_STOP_TIMEOUT_MS, force: false }))
          .catch(() => undefined);
      }, deps.agentBootTimeoutMs);
    }
  }

  list(): Vm[] {
    return this.deps.store.list();
  }

  /** Finds a VM by exact id, exact name, or unique id prefix. */
  get(ref: string): Vm {
    const { store } = this.deps;
    const exact = store.get(ref) ?? store.findByName(ref);
    if (exact) return exact;
    const matches = ref.length > 0 ? store.findByIdPrefix(ref) : [];
    if (matches.length === 1) return matches[0]!;
    if (matches.length > 1) throw new VmAmbiguousError(ref, matches.map((m) => m.id));
    throw new VmNotFoundError(ref);
  }

  paths(vm: Vm): VmPaths {
    return this.deps.files.paths(vm.id);
  }

  /** Creates and boots a VM. On failure, everything the plan made is undone and no record remains. */
  async create(spec: VmSpec, options: CreateOptions = {}): Promise<Vm> {
    const { onProgress } = options;
    const agent = usesAgent(spec);
    if (agent) this.requireAgentSupport();
    const { store, files, clock, ids } = this.deps;
    const taken = store.findByName(spec.name);
    if (taken) throw new VmNameTakenError(spec.name, taken.id);
    const provider = await this.chooseProvider(spec);
    const now = clock.now().toISOString();
    const vm: Vm = { id: ids.newVmId(), name: spec.name, state: 'creating', provider: provider.name, createdAt: now, updatedAt: now, spec, disks: [] };
    const log = this.deps.logger.child({ vmId: vm.id, vmName: vm.name });
    let image: Image | undefined;

    return this.lock.run(vm.id, async () => {
      let paths: VmPaths | undefined;
      let recorded = false;
      let attachment: NetworkAttachment | undefined;
      const steps: PlanStep[] = [
        {
          name: 'record',
          run: async () => {
            store.insert(vm);
            recorded = true;
            this.publish({ type: 'created', vm });
          },
          undo: async () => {
            if (recorded) this.forget(vm);
          },
        },
        {
          name: 'files',
          run: async () => {
            paths = await files.create(vm.id);
          },
          undo: async () => files.remove(vm.id),
        },
        {
          name: 'network',
          run: async () => {
            attachment = await this.attachNetwork(vm);
          },
          undo: async () => this.deps.networks?.detach(vm.id),
        },
        {
          // The image's disk lives in the VM's state dir, so the 'files' undo removes it.
          name: 'image-disk',
          run: async () => {
            if (spec.image === undefined) return;
            const images = this.requireImages();
            image = await images.ensure(spec.image, onProgress);
            const disks = await images.createVmDisk(image, paths!.stateDir, provider.capabilities.diskFormats);
            Object.assign(vm, { disks, imageDigest: image.digest });
            store.update(vm);
          },
        },
        {
          name: 'vmm',
          run: async () => {
            const vmm = await provider.launch({ vmId: vm.id, spec, paths: paths!, rootDisk: await this.rootDisk(spec), disks: vm.disks ?? [], agent, ...(attachment ? { network: attachment } : {}) });
            this.save(vm, { pid: vmm.pid, startedAt: clock.now().toISOString() });
          },
          undo: async () => {
            await provider.kill(vm.id, files.paths(vm.id), vm.pid);
            await provider.cleanup(vm.id, files.paths(vm.id));
          },
        },
        {
          name: 'running',
          run: async () => {
            // An agent VM is 'starting' until its agent answered and the workload runs.
            this.transition(vm, agent ? 'starting' : 'running');
            this.watch(vm, provider);
          },
        },
      ];
      try {
        await runPlan(steps, (step, err) => log.warn({ step, err: String(err) }, 'rollback step failed'));
      } catch (err) {
        log.error({ err: asHypercoreError(err).message }, 'create failed; rolled back');
        throw err;
      }
      log.info({ vmmPid: vm.pid, provider: provider.name, agent }, 'VMM running');
      if (agent && !options.detach) await this.bootWorkload(vm, provider, image);
      return vm;
    }).then((vm) => {
      if (agent && options.detach) void this.lock.run(vm.id, () => this.bootWorkload(this.current(vm.id), provider, image)).catch(() => undefined);
      return vm;
    });
  }

  async start(ref: string): Promise<Vm> {
    const id = this.get(ref).id;
    return this.lock.run(id, async () => {
      const vm = this.current(id);
      if (vm.state === 'running') return vm;
      assertTransition(vm.name, vm.state, 'starting');
      const provider = this.providerOf(vm);
      this.transition(vm, 'starting', { error: undefined });
      try {
        await provider.checkAvailable(vm.spec);
        const attachment = await this.attachNetwork(vm);
        const vmm = await provider.launch({ vmId: vm.id, spec: vm.spec, paths: this.paths(vm), rootDisk: await this.rootDisk(vm.spec), disks: vm.disks ?? [], agent: usesAgent(vm.spec), ...(attachment ? { network: attachment } : {}) });
        this.save(vm, { pid: vmm.pid, startedAt: this.deps.clock.now().toISOString() });
      } catch (err) {
        const e = asHypercoreError(err);
        await provider.kill(vm.id, this.paths(vm), vm.pid).catch(() => undefined);
        await provider.cleanup(vm.id, this.paths(vm)).catch(() => undefined);
        this.transition(vm, 'failed', { pid: undefined, error: { code: e.code, message: e.message } });
        throw e;
      }
      this.watch(vm, provider);
      if (!usesAgent(vm.spec)) return this.transition(vm, 'running');
      await this.bootWorkload(vm, provider, vm.spec.image ? this.deps.images?.find(vm.spec.image) : undefined);
      return vm;
    });
  }

  /** Stops a VM: ACPI power-off, then a kill after `timeoutMs`. Stopping a stopped VM is a no-op. */
  async stop(ref: string, options: StopOptions): Promise<Vm> {
    const id = this.get(ref).id;
    return this.lock.run(id, async () => {
      const vm = this.current(id);
      if (vm.state === 'stopped' || vm.state === 'failed') return vm;
      assertTransition(vm.name, vm.state, 'stopping');
      this.transition(vm, 'stopping');
      await this.haltVmm(vm, options);
      return this.transition(vm, 'stopped', { pid: undefined, error: undefined });
    });
  }

  /** Deletes a VM and every file it owns. A VM with a VMM needs `force`. */
  async delete(ref: string, options: { force: boolean }): Promise<void> {
    const id = this.get(ref).id;
    await this.lock.run(id, async () => {
      const vm = this.current(id);
      if (hasVmm(vm.state) && !options.force) {
        throw new VmStateConflictError(`VM ${vm.name} is ${vm.state}; stop it first or remove it with force (rm -f)`);
      }
      this.transition(vm, 'deleting');
      await this.destroy(vm);
    });
  }

  /**
   * Brings records in line with reality after a daemon (re)start: adopts VMMs that still run,
   * marks dead ones stopped with the reason, and rolls back creates and deletes that a crash interrupted.
   */
  async reconcile(): Promise<void> {
    for (const stale of this.deps.store.list()) {
      await this.lock.run(stale.id, async () => {
        const vm = this.current(stale.id);
        const log = this.deps.logger.child({ vmId: vm.id, vmName: vm.name });
        if (vm.state === 'creating' || vm.state === 'deleting') {
          log.warn({ state: vm.state }, 'finishing an interrupted create/delete: removing the VM');
          if (vm.state === 'creating') vm.error = { code: 'HC_DAEMON_INTERRUPTED', message: 'hypercored stopped while the VM was being created' };
          await this.destroy(vm);
          return;
        }
        if (!hasVmm(vm.state)) return;
        const provider = this.providerOf(vm);
        const status = await provider.status(vm.id, this.paths(vm), vm.pid).catch(() => 'gone' as const);
        if (status === 'running' || status === 'paused') {
          // A crash mid-start or mid-stop leaves 'starting'/'stopping'; the VMM is alive, so it is running.
          if (vm.state !== 'running') this.forceState(vm, 'running', {});
          this.watch(vm, provider);
          if (usesAgent(vm.spec) && this.supervisor) {
            const supervisor = this.supervisor;
            void supervisor.reattach(vm, provider.agentEndpoint(vm.id, this.paths(vm))).catch((err: unknown) => log.warn({ err: String(err) }, 'agent did not answer after the restart'));
          }
          log.info({ vmmPid: vm.pid }, "adopted running VM");
          return;
        }
        await provider.kill(vm.id, this.paths(vm), vm.pid).catch(() => undefined);
        await provider.cleanup(vm.id, this.paths(vm)).catch(() => undefined);
        const error = { code: 'HC_VMM_EXITED', message: `the VMM (pid ${vm.pid ?? 'unknown'}) exited while hypercored was not running` };
        this.forceState(vm, 'stopped', { pid: undefined, error });
        log.warn(error, 'VM marked stopped');
      });
    }
  }

  /** Removes TAPs, rules and leases that belong to no VM (after a crash, or by `network prune`). */
  async pruneNetworks(): Promise<string[]> {
    if (!this.deps.networks) return [];
    return this.deps.networks.prune(new Set(this.deps.store.list().map((vm) => vm.id)));
  }

  /** Problems a person should know about: network leftovers, and VMs recorded as failed. */
  doctor(): string[] {
    const vms = this.deps.store.list();
    const problems = this.deps.networks?.leftovers(new Set(vms.map((vm) => vm.id))) ?? [];
    for (const vm of vms) if (vm.state === 'failed') problems.push(`VM ${vm.name} (${vm.id}) failed: ${vm.error?.message ?? 'no reason recorded'}`);
    return problems;
  }

  /** Stops watching VMMs (they keep running) so the daemon can exit. */
  detachAll(): void {
    for (const unwatch of this.watchers.values()) unwatch();
    this.watchers.clear();
    this.supervisor?.forgetAll();
  }

  /** Starts a process in a running agent VM (inside its workload's container); returns its IO. */
  async exec(ref: string, spec: ProcessSpec): Promise<{ processId: string; io: ProcessIo }> {
    const vm = this.get(ref);
    const session = this.agentSession(vm);
    const { processId } = await session.createProcess(spec, vm.spec.image !== undefined);
    return { processId, io: session.io(processId, 0) };
  }

  /**
   * The workload's main process IO: new output only, or everything from its start (`fromStart`).
   * A workload that already ended is replayed from its recorded output and exit status.
   */
  attach(ref: string, options: { fromStart: boolean }): { processId: string; io: ProcessIo } {
    const vm = this.get(ref);
    if (vm.workloadExit && vm.state !== 'running' && options.fromStart && this.deps.workloadLog) {
      return { processId: MAIN_PROCESS, io: recordedWorkload(this.deps.workloadLog.read(vm), vm.workloadExit) };
    }
    const session = this.agentSession(vm);
    // attach follows: a slow attach client must not pause the workload (the log pump holds it).
    return { processId: MAIN_PROCESS, io: session.io(MAIN_PROCESS, options.fromStart ? 0 : this.supervisor!.loggedOffset(vm.id), { follow: true }) };
  }

  async resizeProcess(ref: string, processId: string, rows: number, cols: number): Promise<void> {
    await this.agentSession(this.get(ref)).resize(processId, rows, cols);
  }

  async signalProcess(ref: string, processId: string, signal: string): Promise<void> {
    await this.agentSession(this.get(ref)).signal(processId, signal);
  }

  // --- internals -------------------------------------------------------------------------

  private async chooseProvider(spec: VmSpec): Promise<Provider> {
    const { providers } = this.deps;
    if (spec.provider !== 'auto') {
      const provider = providers.get(spec.provider);
      if (!provider) throw new ProviderUnavailableError(`provider "${spec.provider}" is not built into this hypercored`);
      await provider.checkAvailable(spec);
      return provider;
    }
    const reasons: string[] = [];
    for (const provider of providers.all()) {
      try {
        await provider.checkAvailable(spec);
        return provider;
      } catch (err) {
        reasons.push(`${provider.name}: ${asHypercoreError(err).message}`);
      }
    }
    throw new ProviderUnavailableError(`no hypervisor is usable on this host (${reasons.join('; ')})`);
  }

  private agentSession(vm: Vm) {
    if (!usesAgent(vm.spec)) throw new HypercoreError(ErrorCodes.agentUnavailable, `VM ${vm.name} boots its own drive and runs no Hypercore agent; exec and attach need a VM created from an image (ref without drive)`);
    if (vm.state !== 'running') throw new VmStateConflictError(`VM ${vm.name} is ${vm.state}; it must be running`);
    return this.supervisor!.session(vm);
  }

  private requireAgentSupport(): void {
    if (!this.supervisor || !this.deps.guest || !this.deps.images) throw new ProviderUnavailableError('this hypercored cannot run image workloads (no guest system image or agent support configured)');
  }

  private async rootDisk(spec: VmSpec): Promise<{ path: string; readOnly: boolean }> {
    if (spec.drive !== undefined) return { path: spec.drive, readOnly: spec.driveReadOnly };
    this.requireAgentSupport();
    // The system image is shared by all agent VMs, so it is always attached read-only.
    return { path: await this.deps.guest!.rootDisk(), readOnly: true };
  }

  /** Waits for the agent and starts the workload; on failure the VM is marked failed with the console's tail. */
  private async bootWorkload(vm: Vm, provider: Provider, image: Image | undefined): Promise<void> {
    const supervisor = this.supervisor!;
    try {
      await supervisor.startWorkload(vm, provider.agentEndpoint(vm.id, this.paths(vm)), image);
    } catch (err) {
      const e = asHypercoreError(err);
      const current = this.current(vm.id);
      Object.assign(vm, current);
      const tail = await supervisor.consoleTail(vm);
      const message = `${e.message}${tail ? `; last console output:\n${tail}` : ''}`;
      if (vm.state === 'starting') {
        supervisor.forget(vm.id);
        await this.haltVmm(vm, { force: true, timeoutMs: 0 });
        this.transition(vm, 'failed', { pid: undefined, error: { code: e.code, message } });
      }
      throw new HypercoreError(e.code, message, { cause: e });
    }
    this.transition(vm, 'running');
    this.deps.logger.child({ vmId: vm.id }).info({}, 'workload running');
  }

  /** Leases an address and creates the TAP (idempotent: a restart gets the same address). */
  private async attachNetwork(vm: Vm): Promise<NetworkAttachment | undefined> {
    if (!vm.spec.network) return undefined;
    if (!this.deps.networks) throw new ProviderUnavailableError('this hypercored has no network support configured');
    const a = await this.deps.networks.attach(vm.id, vm.spec.network, vm.spec.hostInterface);
    vm.network = { ip: a.ip, mac: a.mac, tap: a.tap, gateway: a.gateway };
    this.deps.store.update(vm);
    return a;
  }

  private requireImages(): ImageProvisioner {
    if (!this.deps.images) throw new ProviderUnavailableError('this hypercored has no image support configured');
    return this.deps.images;
  }

  private providerOf(vm: Vm): Provider {
    const provider = this.deps.providers.get(vm.provider);
    if (!provider) throw new ProviderUnavailableError(`VM ${vm.name} uses provider "${vm.provider}", which this hypercored lacks`);
    return provider;
  }

  private current(id: string): Vm {
    const vm = this.deps.store.get(id);
    if (!vm) throw new VmNotFoundError(id);
    return vm;
  }

  private watch(vm: Vm, provider: Provider): void {
    this.watchers.get(vm.id)?.();
    const unwatch = provider.watch(vm.id, this.paths(vm), vm.pid!, (exit) => void this.onVmmExit(vm.id, exit));
    this.watchers.set(vm.id, unwatch);
  }

  private unwatch(vmId: string): void {
    this.watchers.get(vmId)?.();
    this.watchers.delete(vmId);
  }

  /** The VMM went away without being asked to (guest power-off, crash, kill from outside). */
  private async onVmmExit(id: string, exit: VmmExit): Promise<void> {
    this.watchers.delete(id);
    await this.lock.run(id, async () => {
      const vm = this.deps.store.get(id);
      if (!vm || (vm.state !== 'running' && vm.state !== 'starting')) return;
      this.supervisor?.forget(id);
      const provider = this.providerOf(vm);
      await provider.cleanup(vm.id, this.paths(vm)).catch(() => undefined);
      const error = exit.outcome === 'failed' ? { code: 'HC_VMM_EXITED', message: exit.reason } : undefined;
      this.transition(vm, exit.outcome, { pid: undefined, error });
      this.deps.logger.child({ vmId: id }).info({ reason: exit.reason, outcome: exit.outcome }, 'VMM exited');
    }).catch((err) => this.deps.logger.error({ vmId: id, err: String(err) }, 'handling VMM exit failed'));
  }

  private async haltVmm(vm: Vm, options: StopOptions): Promise<void> {
    const provider = this.providerOf(vm);
    const paths = this.paths(vm);
    this.unwatch(vm.id);
    if (!options.force && usesAgent(vm.spec)) {
      // The agent powers the guest off cleanly (sync, poweroff); the power button is the fallback.
      await this.supervisor?.session(vm).shutdown().catch(() => undefined);
    }
    this.supervisor?.forget(vm.id);
    const exited = !options.force && vm.pid !== undefined && (await provider.shutdown(vm.id, paths, vm.pid, options.timeoutMs));
    if (!exited) await provider.kill(vm.id, paths, vm.pid);
    await provider.cleanup(vm.id, paths);
  }

  private async destroy(vm: Vm): Promise<void> {
    const provider = this.deps.providers.get(vm.provider);
    this.unwatch(vm.id);
    this.supervisor?.forget(vm.id);
    if (provider) {
      await provider.kill(vm.id, this.paths(vm), vm.pid);
      await provider.cleanup(vm.id, this.paths(vm));
    }
    await this.deps.networks?.detach(vm.id);
    await this.deps.files.remove(vm.id);
    this.forget(vm);
  }

  private forget(vm: Vm): void {
    this.deps.store.delete(vm.id);
    this.publish({ type: 'deleted', vm });
  }

  private save(vm: Vm, patch: Partial<Pick<Vm, 'pid' | 'startedAt' | 'error'>>): Vm {
    Object.assign(vm, patch, { updatedAt: this.deps.clock.now().toISOString() });
    for (const key of Object.keys(patch) as (keyof typeof patch)[]) if (patch[key] === undefined) delete vm[key];
    return this.deps.store.update(vm);
  }

  private transition(vm: Vm, to: VmState, patch: { pid?: number | undefined; error?: VmError | undefined } = {}): Vm {
    assertTransition(vm.name, vm.state, to);
    return this.forceState(vm, to, patch);
  }

  private forceState(vm: Vm, to: VmState, patch: { pid?: number | undefined; error?: VmError | undefined }): Vm {
    const previousState = vm.state;
    vm.state = to;
    this.save(vm, patch);
    this.publish({ type: 'state-changed', vm, previousState });
    return vm;
  }

  private publish(e: { type: VmEvent['type']; vm: Vm; previousState?: VmState }): void {
    const event: VmEvent = { type: e.type, vmId: e.vm.id, name: e.vm.name, state: e.vm.state, at: this.deps.clock.now().toISOString() };
    if (e.previousState) event.previousState = e.previousState;
    if (e.vm.error) event.error = e.vm.error;
    this.events.publish(event);
  }
}

/** A finished workload's IO, replayed from its recorded output. */
function recordedWorkload(output: AsyncIterable<Uint8Array>, exit: ExitStatus): ProcessIo {
  let offset = 0;
  return {
    write: async () => {
      throw new VmStateConflictError('the workload has exited; it reads no more input');
    },
    closeStdin: async () => undefined,
    close: () => undefined,
    async *[Symbol.asyncIterator]() {
      for await (const data of output) {
        yield { kind: 'output' as const, fd: 1 as const, data, offset };
        offset += data.length;
      }
      yield { kind: 'exit' as const, status: exit };
    },
  };
}

/** A VM without its own drive boots the guest system image and runs its image under the agent. */
export function usesAgent(spec: VmSpec): boolean {
  return spec.drive === undefined;
}

export type { ProviderName };
