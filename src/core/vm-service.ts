/**
 * The VM service: the use cases (create, start, stop, delete, reconcile, exec) as thin
 * sequences over the parts that do the work: records and the state machine (vm-records), what
 * runs on the host (vm-runtime), the create and start plans (create/), reconcile, and processes.
 * One operation at a time per VM (a keyed lock); the API transports call this, the daemon wires
 * real adapters into it.
 */
import { AgentSupervisor, type WorkloadLog } from './agent-supervisor.js';
import type { AgentConnector, AgentSession, ProcessIo, ProcessSpec } from './agent.js';
import type { PlanContext, PlanServices } from './create/context.js';
import { runPlan, type StepTiming } from './create/plan.js';
import { createPlan, definePlan, restorePlan, startPlan } from './create/plans.js';
import { bootWorkload, resumeWorkload } from './create/workload.js';
import { asHypercoreError, ImageNotFoundError, InvalidArgumentError, ProviderUnavailableError, SnapshotUnsupportedError, VmNameTakenError, VmStateConflictError } from './errors.js';
import type { EventHub } from './event-hub.js';
import type { Image, PullProgress } from './image.js';
import { KeyedLock } from './keyed-lock.js';
import { hasVmm } from './lifecycle.js';
import type { MetadataValues } from './metadata.js';
import type { Clock, GuestBoot, GuestSystem, IdGenerator, ImageProvisioner, Logger, Provider, ProviderRegistry, ProviderReport, SnapshotFiles, SnapshotStore, VmFiles, VmmExit, VmNetworks, VmObserver, VmPaths, VmStore } from './ports.js';
import { restoredIdentity } from './identity.js';
import type { Snapshot } from './snapshot.js';
import { VmSnapshots, type TakeOptions } from './snapshots.js';
import { VmProcesses } from './processes.js';
import { VmMetadata } from './vm-metadata.js';
import { reconcileVm, type Followup } from './reconcile.js';
import { VmRecords } from './vm-records.js';
import { usesAgent, VmRuntime, type HaltOptions } from './vm-runtime.js';
import type { ProviderName, Vm, VmSpec } from './vm.js';

export { usesAgent } from './vm-runtime.js';

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
  /** The guest boot contract: default kernel and initrd, and the kernel arguments every guest gets. */
  boot: GuestBoot;
  /** Needed for snapshots, restores and clones. */
  snapshots?: { store: SnapshotStore; files: SnapshotFiles };
  /** Told of boots (and restores) with their timings, for metrics. */
  observer?: VmObserver;
}

/** Most clones one `clone` makes: each is a whole VM, and they are restored one after another. */
export const MAX_CLONES = 32;

export interface CreateOptions {
  onProgress?: (p: PullProgress) => void;
  /** Return once the VMM runs, without waiting for the agent and the workload. */
  detach?: boolean;
  /** false: define the VM (record, directories, image disk) without booting it; `start` boots it. */
  start?: boolean;
  /**
   * false: an image the store lacks fails the create at once with HC_IMAGE_NOT_FOUND (nothing is
   * made), instead of being pulled without progress: the CLI then pulls it showing progress, and
   * creates again (Docker's CLI does the same).
   */
  pull?: boolean;
}

export type StopOptions = HaltOptions;

export const DEFAULT_STOP_TIMEOUT_MS = 10_000;

export class VmService {
  readonly events: EventHub;
  private readonly lock = new KeyedLock();
  private readonly records: VmRecords;
  private readonly runtime: VmRuntime;
  private readonly processes: VmProcesses;
  private readonly metadata: VmMetadata;
  private readonly supervisor?: AgentSupervisor;
  private readonly services: PlanServices;
  private readonly snapshots?: VmSnapshots;
  /** Work that outlives the call that started it (a detached boot, a resumed create). */
  private readonly background = new Set<Promise<void>>();
  /** Workload boots waiting for their agent, so a stop or rm can cut the wait short. */
  private readonly booting = new Map<string, AbortController>();

  constructor(private readonly deps: VmServiceDeps) {
    this.records = new VmRecords(deps.store, deps.clock, deps.logger);
    this.events = this.records.events;
    if (deps.agents && deps.workloadLog) {
      this.supervisor = new AgentSupervisor(deps.agents, deps.workloadLog, deps.logger, (vmId, status) => this.onWorkloadExit(vmId, status), deps.agentBootTimeoutMs);
    }
    this.runtime = new VmRuntime(this.records, deps.providers, deps.files, deps.networks, this.supervisor);
    this.processes = new VmProcesses(this.records, this.supervisor, deps.workloadLog);
    this.metadata = new VmMetadata(this.records, this.supervisor);
    this.services = {
      records: this.records,
      runtime: this.runtime,
      files: deps.files,
      boot: deps.boot,
      ...(deps.networks ? { networks: deps.networks } : {}),
      ...(deps.images ? { images: deps.images } : {}),
      ...(deps.guest ? { guest: deps.guest } : {}),
      ...(deps.snapshots ? { snapshotFiles: deps.snapshots.files } : {}),
      onVmmExit: (vmId, exit) => void this.onVmmExit(vmId, exit),
    };
    if (deps.snapshots) this.snapshots = new VmSnapshots(deps.snapshots.store, deps.snapshots.files, this.records, this.runtime, deps.ids);
  }

  list(): Vm[] {
    return this.records.list();
  }

  /** Finds a VM by exact id, exact name, or unique id prefix. */
  get(ref: string): Vm {
    return this.records.find(ref);
  }

  paths(vm: Vm): VmPaths {
    return this.runtime.paths(vm.id);
  }

  /**
   * The unix socket of a running or paused VM's interactive serial console (ttyS0).
   * @throws VmStateConflictError when the VM does not run, or its provider serves no such socket.
   */
  serialConsole(ref: string): string {
    const vm = this.records.find(ref);
    if (vm.state !== 'running' && vm.state !== 'paused') throw new VmStateConflictError(`VM ${vm.name} is ${vm.state}; only a running VM has a serial console to type into`);
    const provider = this.runtime.providerOf(vm);
    if (!provider.serialConsole) throw new VmStateConflictError(`provider ${provider.name} has no interactive serial console (VM ${vm.name}'s console is the VMM's output, read-only: see its logs)`);
    return provider.serialConsole(this.paths(vm));
  }

  /** The agent session of a running agent VM (pod VMs' containers go through it). */
  agentSession(ref: string): AgentSession {
    return this.processes.session(this.records.find(ref));
  }

  /** Creates and boots a VM. On failure, everything the plan made is undone and no record remains. */
  async create(spec: VmSpec, options: CreateOptions = {}): Promise<Vm> {
    const agent = usesAgent(spec);
    if (agent) this.requireAgentSupport();
    const taken = this.records.findByName(spec.name);
    if (taken) throw new VmNameTakenError(spec.name, taken.id);
    if (options.pull === false && spec.image !== undefined && this.deps.images?.find(spec.image) === undefined) throw new ImageNotFoundError(spec.image);
    const { provider, reason } = await this.chooseProvider(spec);
    const now = this.records.now();
    const vm: Vm = { id: this.deps.ids.newVmId(), name: spec.name, state: 'creating', provider: provider.name, providerReason: reason, createdAt: now, updatedAt: now, spec, disks: [], ...(options.start === false ? { defineOnly: true as const } : {}) };
    const ctx: PlanContext = { vm, provider, agent, services: this.services, ...(options.onProgress ? { onProgress: options.onProgress } : {}) };
    if (options.start === false) return this.lock.run(vm.id, async () => (await this.runCreatePlan(ctx, definePlan), vm));
    const booted = await this.lock.run(vm.id, async () => {
      const timings = await this.runCreatePlan(ctx);
      if (agent && !options.detach) timings.push(...(await this.bootAbortably(vm, provider, ctx.image)));
      this.logBoot(vm, now, timings, 'create');
      return vm;
    });
    if (agent && options.detach) this.inBackground(vm, 'booting the workload', () => this.bootWorkloadLocked(vm.id, ctx.image));
    return booted;
  }

  async start(ref: string): Promise<Vm> {
    const id = this.records.find(ref).id;
    return this.lock.run(id, async () => {
      const vm = this.records.current(id);
      if (vm.state === 'running') return vm;
      const at = this.records.now();
      this.records.transition(vm, 'starting', { error: undefined });
      const provider = this.runtime.providerOf(vm);
      const agent = usesAgent(vm.spec);
      const ctx: PlanContext = { vm, provider, agent, services: this.services };
      let timings: StepTiming[];
      try {
        timings = await runPlan(startPlan, ctx, this.planHooks(vm));
      } catch (err) {
        const e = asHypercoreError(err);
        this.records.transition(vm, 'failed', { pid: undefined, error: { code: e.code, message: e.message } });
        throw e;
      }
      if (agent) timings.push(...(await this.bootAbortably(vm, provider, this.imageOf(vm))));
      this.logBoot(vm, at, timings, 'start');
      return vm;
    });
  }

  /** Stops a VM: ACPI power-off, then a kill after `timeoutMs`. Stopping a stopped VM is a no-op. */
  async stop(ref: string, options: StopOptions): Promise<Vm> {
    const id = this.records.find(ref).id;
    this.booting.get(id)?.abort();
    return this.lock.run(id, () => this.stopLocked(id, options));
  }

  /** Freezes a running VM's vCPUs (provider capability `pause`); a paused VM takes no exec. */
  async pause(ref: string): Promise<Vm> {
    const id = this.records.find(ref).id;
    return this.lock.run(id, async () => {
      const vm = this.records.current(id);
      if (vm.state === 'paused') return vm;
      if (vm.state !== 'running') throw new VmStateConflictError(`VM ${vm.name} is ${vm.state}; only a running VM can be paused`);
      const provider = this.runtime.providerOf(vm);
      if (!provider.capabilities.pause || !provider.pause) throw new VmStateConflictError(`provider ${provider.name} cannot pause VMs`);
      await provider.pause(vm.id, this.paths(vm), vm.pid!);
      return this.records.transition(vm, 'paused');
    });
  }

  /** Lets a paused VM run on. */
  async resume(ref: string): Promise<Vm> {
    const id = this.records.find(ref).id;
    return this.lock.run(id, async () => {
      const vm = this.records.current(id);
      if (vm.state === 'running') return vm;
      if (vm.state !== 'paused') throw new VmStateConflictError(`VM ${vm.name} is ${vm.state}; only a paused VM can be resumed`);
      await this.resumeVmm(vm);
      this.records.transition(vm, 'running');
      // Paused across a daemon restart: its agent was not reconnected then.
      const supervisor = this.supervisor;
      if (usesAgent(vm.spec) && supervisor && !supervisor.connected(vm.id)) {
        this.inBackground(vm, 'reconnecting to the agent after a resume', () => supervisor.reattach(vm, this.runtime.providerOf(vm).agentEndpoint(vm.id, this.paths(vm))));
      }
      return vm;
    });
  }

  /** Snapshots a running or paused VM: memory, device state and disks of one instant. */
  async snapshot(ref: string, options: TakeOptions = {}): Promise<Snapshot> {
    const snapshots = this.requireSnapshots();
    const id = this.records.find(ref).id;
    return this.lock.run(id, () => snapshots.take(this.records.current(id), options));
  }

  listSnapshots(): Snapshot[] {
    return this.requireSnapshots().list();
  }

  getSnapshot(ref: string): Snapshot {
    return this.requireSnapshots().find(ref);
  }

  /** Removes a snapshot; VMs restored from it run on. */
  async deleteSnapshot(ref: string): Promise<void> {
    await this.requireSnapshots().remove(ref);
  }

  /** Digests of images that snapshots need (image prune keeps them). */
  snapshotImageDigests(): Set<string> {
    return this.snapshots?.imageDigests() ?? new Set();
  }

  /**
   * A new VM that resumes from a snapshot instead of booting: its own disks, TAP, MAC, lease,
   * hostname and machine id; its agent (image VMs) gets the host's clock and fresh entropy. On
   * failure everything is undone, as for create.
   */
  async restore(snapshotRef: string, options: { name?: string } = {}): Promise<Vm> {
    const snapshots = this.requireSnapshots();
    const snapshot = snapshots.find(snapshotRef);
    return this.restoreFrom(snapshot, snapshots.dir(snapshot), options.name ?? this.freeName(`${snapshot.vmName}-restored`));
  }

  /**
   * `count` new VMs from one snapshot of `ref` taken now: each a separate VM with its own identity.
   * The snapshot is removed afterwards (the clones' VMMs hold what they use); if a clone fails, the
   * clones made so far are removed too.
   */
  async clone(ref: string, options: { count: number }): Promise<Vm[]> {
    const { count } = options;
    if (!Number.isInteger(count) || count < 1 || count > MAX_CLONES) {
      throw new InvalidArgumentError(`count = ${String(count)}: must be a whole number from 1 to ${MAX_CLONES}`, [{ path: 'count', message: `a whole number from 1 to ${MAX_CLONES}`, value: count }]);
    }
    const snapshots = this.requireSnapshots();
    const source = this.records.find(ref);
    const snapshot = await this.snapshot(source.id, { name: this.freeSnapshotName(`${source.name}-clone`) });
    const clones: Vm[] = [];
    try {
      for (let i = 0; i < count; i++) clones.push(await this.restoreFrom(snapshot, snapshots.dir(snapshot), this.freeName(`${source.name}-clone`)));
      return clones;
    } catch (err) {
      for (const vm of clones) await this.delete(vm.id, { force: true }).catch((e: unknown) => this.records.log(vm).error({ err: asHypercoreError(e).message }, 'could not remove a clone after another failed'));
      throw err;
    } finally {
      await snapshots.remove(snapshot.id).catch((e: unknown) => this.deps.logger.error({ snapshot: snapshot.id, err: asHypercoreError(e).message }, 'could not remove the snapshot of a clone'));
    }
  }

  /** Deletes a VM and every file it owns. A VM with a VMM needs `force`. */
  async delete(ref: string, options: { force: boolean }): Promise<void> {
    const id = this.records.find(ref).id;
    if (options.force) this.booting.get(id)?.abort();
    await this.lock.run(id, async () => {
      const vm = this.records.current(id);
      if (hasVmm(vm.state) && !options.force) {
        throw new VmStateConflictError(`VM ${vm.name} is ${vm.state}; stop it first or remove it with force (rm -f)`);
      }
      // Defined and never started: no VMM, runtime file or network was ever made for it.
      const neverStarted = vm.state === 'created';
      // A delete that failed half-way (the VMM could not be killed) left `deleting`: go on with it.
      if (vm.state !== 'deleting') this.records.transition(vm, 'deleting');
      await this.runtime.destroy(vm, { neverStarted });
    });
  }

  /**
   * Brings records in line with reality after a daemon (re)start (see reconcile.ts). Resolves
   * once every record is consistent; slow follow-ups (a resumed create, an agent handshake) go on
   * in the background (`settled()` waits for them).
   */
  async reconcile(): Promise<void> {
    for (const stale of this.records.list()) {
      await this.lock.run(stale.id, async () => {
        const vm = this.records.current(stale.id);
        const followup = await reconcileVm(vm, this.records, this.runtime).catch((err: unknown) => {
          this.records.log(vm).error({ err: asHypercoreError(err).message, state: vm.state }, 'reconcile of this VM failed; its record is unchanged');
          return undefined;
        });
        if (followup) this.followUp(vm, followup);
      });
    }
  }

  /** Resolves when background work (detached boots, resumed creates) has finished. */
  async settled(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }

  /** Removes TAPs, rules and leases that belong to no VM (after a crash, or by `network prune`). */
  async pruneNetworks(): Promise<string[]> {
    if (!this.deps.networks) return [];
    return this.deps.networks.prune(new Set(this.records.list().map((vm) => vm.id)));
  }

  /** Problems a person should know about: network leftovers, and VMs recorded as failed. */
  doctor(): string[] {
    const vms = this.records.list();
    const problems = this.deps.networks?.leftovers(new Set(vms.map((vm) => vm.id))) ?? [];
    for (const vm of vms) if (vm.state === 'failed') problems.push(`VM ${vm.name} (${vm.id}) failed: ${vm.error?.message ?? 'no reason recorded'}`);
    return problems;
  }

  /** Stops watching VMMs (they keep running) so the daemon can exit. */
  detachAll(): void {
    this.runtime.detachAll();
  }

  exec(ref: string, spec: ProcessSpec): Promise<{ processId: string; io: ProcessIo }> {
    return this.processes.exec(ref, spec);
  }

  attach(ref: string, options: { fromStart: boolean }): { processId: string; io: ProcessIo } {
    return this.processes.attach(ref, options);
  }

  resizeProcess(ref: string, processId: string, rows: number, cols: number): Promise<void> {
    return this.processes.resize(ref, processId, rows, cols);
  }

  signalProcess(ref: string, processId: string, signal: string): Promise<void> {
    return this.processes.signal(ref, processId, signal);
  }

  /** A VM's values and secrets (secrets in clear: callers outside the core must hide them). */
  getMetadata(ref: string): MetadataValues {
    return this.metadata.get(ref);
  }

  /** Sets metadata entries, in a running guest at once (one operation at a time per VM). */
  async setMetadata(ref: string, entries: Readonly<Record<string, string>>, secret: boolean): Promise<MetadataValues> {
    const id = this.records.find(ref).id;
    return this.lock.run(id, () => this.metadata.set(id, entries, secret));
  }

  // --- internals -------------------------------------------------------------------------

  private requireSnapshots(): VmSnapshots {
    if (!this.snapshots) throw new SnapshotUnsupportedError('this hypercored has no snapshot support configured');
    return this.snapshots;
  }

  /** `base-1`, `base-2`, ...: the first that no VM has. */
  private freeName(base: string): string {
    for (let i = 1; ; i++) if (!this.records.findByName(`${base}-${i}`)) return `${base}-${i}`;
  }

  private freeSnapshotName(base: string): string {
    const taken = new Set(this.requireSnapshots().list().map((s) => s.name));
    for (let i = 1; ; i++) if (!taken.has(`${base}-${i}`)) return `${base}-${i}`;
  }

  private async restoreFrom(snapshot: Snapshot, dir: string, name: string): Promise<Vm> {
    const agent = usesAgent(snapshot.spec);
    if (agent) this.requireAgentSupport();
    const taken = this.records.findByName(name);
    if (taken) throw new VmNameTakenError(name, taken.id);
    const provider = this.deps.providers.get(snapshot.provider);
    if (!provider) throw new ProviderUnavailableError(`snapshot ${snapshot.name} needs provider "${snapshot.provider}", which this hypercored lacks`);
    // Its own address and MAC: the source's (even a static one) stay the source's.
    const network = snapshot.spec.network ? (({ ip: _ip, mac: _mac, ...rest }) => rest)(snapshot.spec.network) : undefined;
    const spec = { ...snapshot.spec, name, ...(network ? { network } : {}) };
    const now = this.records.now();
    const vm: Vm = { id: this.deps.ids.newVmId(), name, state: 'creating', provider: provider.name, providerReason: `restored from snapshot ${snapshot.name}`, createdAt: now, updatedAt: now, spec, disks: [], restoredFrom: snapshot.id };
    const beforeResume = agent ? () => this.supervisor!.openEarly(vm, provider.agentEndpoint(vm.id, this.runtime.paths(vm.id))) : undefined;
    const ctx: PlanContext = { vm, provider, agent, services: this.services, restore: { snapshot, dir, ...(beforeResume ? { beforeResume } : {}) } };
    return this.lock.run(vm.id, async () => {
      const timings = await this.runCreatePlan(ctx, restorePlan);
      if (agent) timings.push(...(await this.resumeAbortably(vm, provider, ctx)));
      this.logBoot(vm, now, timings, 'restore');
      return vm;
    });
  }

  private async resumeAbortably(vm: Vm, provider: Provider, ctx: PlanContext): Promise<StepTiming[]> {
    const abort = new AbortController();
    this.booting.set(vm.id, abort);
    try {
      return await resumeWorkload(vm, provider, () => restoredIdentity(vm, this.deps.clock.now(), ctx.attachment), this.workloadBoot(), abort.signal);
    } finally {
      if (this.booting.get(vm.id) === abort) this.booting.delete(vm.id);
    }
  }

  /** The provider for `spec`, and why: "auto" takes the first usable one in the registry's order. */
  private async chooseProvider(spec: VmSpec): Promise<{ provider: Provider; reason: string }> {
    const { providers } = this.deps;
    if (spec.provider !== 'auto') {
      const provider = providers.get(spec.provider);
      if (!provider) throw new ProviderUnavailableError(`provider "${spec.provider}" is not built into this hypercored`);
      await provider.checkAvailable(spec);
      return { provider, reason: `provider = "${spec.provider}" was asked for` };
    }
    const seen: string[] = [];
    for (const provider of providers.all()) {
      const report = await provider.describe(spec);
      const lacking = report.usable ? this.lacking(provider, spec) : undefined;
      if (report.usable && !lacking) {
        await provider.checkAvailable(spec);
        return { provider, reason: `auto: ${[...seen, `${provider.name} picked (${report.detail})`].join('; ')}` };
      }
      seen.push(`${provider.name} ${report.usable ? `cannot run this VM (${lacking})` : `unusable (${report.detail})`}`);
    }
    throw new ProviderUnavailableError(`no hypervisor is usable on this host: ${seen.join('; ')}`);
  }

  /** What `provider` lacks to run `spec`: image and pod VMs need an agent channel, pod VMs disk swaps too. */
  private lacking(provider: Provider, spec: VmSpec): string | undefined {
    if (usesAgent(spec) && provider.capabilities.agentChannels.length === 0) return 'no agent channel';
    // Containers arrive as root disks swapped into a running pod VM.
    if (spec.pod && !provider.swapDisk) return 'no disk swap into a running VM, which pod VMs need';
    return undefined;
  }

  /** Every provider with its version, or why it is unusable, with default settings (for `doctor`). */
  async providerReports(): Promise<ProviderReport[]> {
    return Promise.all(this.deps.providers.all().map((p) => p.describe()));
  }

  private requireAgentSupport(): void {
    if (!this.supervisor || !this.deps.guest || !this.deps.images) throw new ProviderUnavailableError('this hypercored cannot run image workloads (no guest system image or agent support configured)');
  }

  private planHooks(vm: Vm) {
    const log = this.records.log(vm);
    return {
      onUndoError: (step: string, err: unknown) => log.warn({ step, err: asHypercoreError(err).message }, 'rollback step failed'),
      onStep: (t: StepTiming) => log.debug({ step: t.step, ms: t.ms, ...(t.done ? { alreadyDone: true } : {}) }, 'plan step finished'),
    };
  }

  /** Runs the create plan (fresh or resumed); a failure is rolled back and rethrown. */
  private async runCreatePlan(ctx: PlanContext, plan = createPlan): Promise<StepTiming[]> {
    try {
      return await runPlan(plan, ctx, this.planHooks(ctx.vm));
    } catch (err) {
      this.records.log(ctx.vm).error({ err: asHypercoreError(err).message }, 'create failed; rolled back');
      throw err;
    }
  }

  /**
   * Logs a boot's steps, keeps them on the record as its last start (`inspect`), and tells the
   * observer: a restore (from a snapshot) counts as `restored`, not as a boot.
   */
  private logBoot(vm: Vm, at: string, timings: StepTiming[], operation: 'create' | 'start' | 'restore'): void {
    const totalMs = this.keepTrace(vm, at, timings);
    try {
      if (operation === 'restore') this.deps.observer?.restored?.(vm, totalMs / 1000);
      else this.deps.observer?.booted?.(vm, operation, timings);
    } catch (err) {
      this.records.log(vm).warn({ err: asHypercoreError(err).message }, 'boot observer failed');
    }
  }

  /** Logs the steps of a create, start or restore and keeps them on the record as its last start; returns their sum. */
  private keepTrace(vm: Vm, at: string, timings: StepTiming[]): number {
    const totalMs = Math.round(timings.reduce((sum, t) => sum + t.ms, 0) * 10) / 10;
    this.records.log(vm).info({ provider: vm.provider, vmmPid: vm.pid, totalMs, steps: timings }, `VM ${vm.state}`);
    if (this.records.exists(vm.id)) this.records.save(vm, { lastStart: { at, totalMs, steps: timings } });
    return totalMs;
  }

  private workloadBoot() {
    return { records: this.records, runtime: this.runtime, supervisor: this.supervisor! };
  }

  private imageOf(vm: Vm): Image | undefined {
    return vm.spec.image ? this.deps.images?.find(vm.spec.image) : undefined;
  }

  private async bootWorkloadLocked(id: string, image: Image | undefined): Promise<void> {
    await this.lock.run(id, async () => {
      const vm = this.records.current(id);
      // A stop or rm that came first wins; there is nothing left to boot.
      if (vm.state !== 'starting') return;
      const steps = await this.bootAbortably(vm, this.runtime.providerOf(vm), image ?? this.imageOf(vm));
      // A detached create recorded its plan's steps; the workload's come now.
      // (The create told the observer of its boot already.)
      const earlier = vm.lastStart;
      this.keepTrace(vm, earlier?.at ?? this.records.now(), [...(earlier?.steps ?? []), ...steps]);
    });
  }

  /** Boots the workload; a stop or rm of the VM meanwhile aborts the wait for its agent. */
  private async bootAbortably(vm: Vm, provider: Provider, image: Image | undefined): Promise<StepTiming[]> {
    const abort = new AbortController();
    this.booting.set(vm.id, abort);
    try {
      return await bootWorkload(vm, provider, image, this.workloadBoot(), abort.signal);
    } finally {
      if (this.booting.get(vm.id) === abort) this.booting.delete(vm.id);
    }
  }

  private async stopLocked(id: string, options: StopOptions): Promise<Vm> {
    const vm = this.records.current(id);
    if (vm.state === 'stopped' || vm.state === 'failed' || vm.state === 'created') return vm;
    // A frozen guest cannot power itself off: let it run for a graceful stop (a forced one just kills).
    if (vm.state === 'paused' && !options.force) await this.resumeVmm(vm);
    // A stop interrupted earlier (daemon crash, a failed kill) left `stopping`: finish it.
    if (vm.state !== 'stopping') this.records.transition(vm, 'stopping');
    try {
      await this.runtime.halt(vm, options);
    } catch (err) {
      // Even the kill failed: the VMM may still run. Say so in the record; stop can be retried.
      const e = asHypercoreError(err);
      this.records.transition(vm, 'failed', { error: { code: e.code, message: `stop could not end the VMM: ${e.message}` } });
      throw e;
    }
    return this.records.transition(vm, 'stopped', { pid: undefined, error: undefined });
  }

  /** The VMM went away without being asked to (guest power-off, crash, kill from outside). */
  private async onVmmExit(id: string, exit: VmmExit): Promise<void> {
    await this.lock.run(id, async () => {
      if (!this.records.exists(id)) return;
      const vm = this.records.current(id);
      if (vm.state !== 'running' && vm.state !== 'starting' && vm.state !== 'paused') return;
      await this.runtime.released(vm);
      const error = exit.outcome === 'failed' ? { code: 'HC_VMM_EXITED', message: exit.reason } : undefined;
      this.records.transition(vm, exit.outcome, { pid: undefined, error });
      this.records.log(vm).info({ reason: exit.reason, outcome: exit.outcome }, 'VMM exited');
    }).catch((err: unknown) => this.deps.logger.error({ vmId: id, err: asHypercoreError(err).message }, 'handling the VMM exit failed'));
  }

  /** The workload's main process ended: record how, and power the VM off, as a container stops with its main process. */
  private onWorkloadExit(vmId: string, status: { exitCode: number; signal?: string }): void {
    void this.lock
      .run(vmId, async () => {
        if (!this.records.exists(vmId)) return;
        this.records.save(this.records.current(vmId), { workloadExit: status });
        await this.stopLocked(vmId, { timeoutMs: DEFAULT_STOP_TIMEOUT_MS, force: false });
      })
      .catch((err: unknown) => this.deps.logger.error({ vmId, err: asHypercoreError(err).message }, 'powering off the VM after its workload exited failed'));
  }

  private followUp(vm: Vm, followup: Followup): void {
    const watch = () => this.runtime.watch(vm, (exit) => void this.onVmmExit(vm.id, exit));
    switch (followup) {
      case 'watch':
        watch();
        return;
      case 'boot-workload':
        watch();
        this.inBackground(vm, 'booting the workload after a restart', () => this.bootWorkloadLocked(vm.id, undefined));
        return;
      case 'reattach-agent':
        watch();
        if (this.supervisor) {
          const supervisor = this.supervisor;
          this.inBackground(vm, 'reconnecting to the agent after a restart', () => supervisor.reattach(vm, this.runtime.providerOf(vm).agentEndpoint(vm.id, this.paths(vm))));
        }
        return;
      case 'finish-stop':
        this.inBackground(vm, 'finishing a stop interrupted by a restart', () => this.lock.run(vm.id, async () => void (await this.stopLocked(vm.id, { timeoutMs: DEFAULT_STOP_TIMEOUT_MS, force: false }))));
        return;
      case 'finish-delete':
        this.inBackground(vm, 'finishing a delete interrupted by a restart', () => this.lock.run(vm.id, () => this.runtime.destroy(this.records.current(vm.id))));
        return;
      case 'resume-create':
        this.inBackground(vm, 'resuming a create interrupted by a restart', () => this.resumeCreate(vm.id));
        return;
    }
  }

  /** A create the daemon died in: its plan runs again, skipping what is done; a failure rolls it all back. */
  private async resumeCreate(id: string): Promise<void> {
    const ctx = await this.lock.run(id, async () => {
      const vm = this.records.current(id);
      if (vm.state !== 'creating') return undefined;
      if (vm.restoredFrom) {
        // A restore cannot be picked up half-way (its VMM waits for a state stream that is gone): undo it.
        this.records.log(vm).warn({}, 'removing a restore that hypercored was interrupted in');
        this.records.transition(vm, 'deleting');
        await this.runtime.destroy(vm);
        return undefined;
      }
      const ctx: PlanContext = { vm, provider: this.runtime.providerOf(vm), agent: usesAgent(vm.spec), services: this.services };
      if (vm.defineOnly) {
        // `create` without boot: the definition is finished, nothing is booted.
        this.records.log(vm).warn({}, 'finishing the definition of a VM that hypercored was interrupted in (not booting it)');
        await this.runCreatePlan(ctx, definePlan);
        return undefined;
      }
      this.records.log(vm).warn({}, 'resuming a create that hypercored was interrupted in');
      this.logBoot(vm, this.records.now(), await this.runCreatePlan(ctx), 'create');
      return ctx;
    });
    if (ctx?.agent) await this.bootWorkloadLocked(id, ctx.image);
  }

  private async resumeVmm(vm: Vm): Promise<void> {
    const provider = this.runtime.providerOf(vm);
    if (!provider.resume) throw new VmStateConflictError(`provider ${provider.name} cannot resume VMs`);
    await provider.resume(vm.id, this.paths(vm), vm.pid!);
  }

  /** Runs `task` after the current call returns; its failure is logged with the VM, never lost. */
  private inBackground(vm: Vm, what: string, task: () => Promise<void>): void {
    const run = task()
      .catch((err: unknown) => this.records.log(vm).error({ err: asHypercoreError(err).message }, `${what} failed`))
      .finally(() => this.background.delete(run));
    this.background.add(run);
  }
}

export type { ProviderName };
