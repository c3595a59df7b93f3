/**
 * The pod use cases: a containerd sandbox becomes a pod VM, and its containers are added to the
 * running VM (no reboot) and removed again. The VM itself goes through VmService like any other;
 * this service owns the container records, the VM's root disk slots and the container calls of
 * the VM's agent. Live plumbing (stdio FIFOs, containerd's events) belongs to the caller.
 */
import type { AgentSession, ProcessIo } from './agent.js';
import { asHypercoreError, ContainerNotFoundError, ContainerStateConflictError, ErrorCodes, HypercoreError } from './errors.js';
import { KeyedLock } from './keyed-lock.js';
import type { GuestContainerStats, GuestTerminal, PodAgent } from './pod-agent.js';
import { DEFAULT_POD_SLOTS, podProcessId, slotSerial, type ContainerStore, type HostMount, type PodContainer, type PodExec, type PodNetworks, type ProcessExit, type ProcessStdio, type RootfsImages } from './pod.js';
import type { Clock, Logger, ProviderRegistry } from './ports.js';
import type { ProviderChoice, Vm, VmSpec } from './vm.js';
import type { VmService } from './vm-service.js';

export interface PodServiceDeps {
  vms: VmService;
  containers: ContainerStore;
  rootfs: RootfsImages;
  providers: ProviderRegistry;
  /** Needed for pods with a network namespace. */
  networks?: PodNetworks;
  clock: Clock;
  logger: Logger;
}

/** What a pod VM is made with, unless the sandbox asks otherwise. */
export interface PodDefaults {
  cores: number;
  memoryMib: number;
  slots: number;
  provider: ProviderChoice;
}

export const POD_DEFAULTS: PodDefaults = { cores: 1, memoryMib: 256, slots: DEFAULT_POD_SLOTS, provider: 'auto' };

export interface SandboxRequest {
  owner: string;
  events: string;
  namespace: string;
  sandboxId: string;
  netns?: string;
  cores?: number;
  memoryMib?: number;
}

/** A container as the guest is to run it: its OCI config for the guest, and the files it binds. */
export interface GuestContainer {
  config: Uint8Array;
  files: { name: string; content: Uint8Array; mode: number }[];
  /** Namespaces of the sandbox container to join (ipc, uts, pid). */
  shareNamespaces: string[];
}

export interface ContainerRequest {
  id: string;
  bundle: string;
  mounts: readonly HostMount[];
  guest: GuestContainer;
  stdio: ProcessStdio;
}

/** 32-bit FNV-1a of `text`, as 8 hex digits: enough to tell apart pods that share a readable id. */
function shortHash(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

/** The VM name of a pod: readable, unique per containerd, namespace and sandbox. */
export function podVmName(owner: string, namespace: string, sandboxId: string): string {
  const hash = shortHash(`${owner}\n${namespace}\n${sandboxId}`);
  const readable = sandboxId.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 40);
  return `pod-${readable}-${hash}`;
}

/** Signal numbers containerd sends, as the agent names them. */
function signalName(signal: number): string {
  return String(signal);
}

export class PodService {
  private readonly lock = new KeyedLock();

  constructor(
    private readonly deps: PodServiceDeps,
    private readonly defaults: PodDefaults = POD_DEFAULTS,
  ) {}

  /** The pod VM serving containerd `owner`'s sandbox, if there is one. */
  findSandbox(owner: string, namespace: string, sandboxId: string): Vm | undefined {
    return this.deps.vms.list().find((vm) => vm.spec.pod?.owner === owner && vm.spec.pod.namespace === namespace && vm.spec.pod.sandboxId === sandboxId);
  }

  /** Pod VMs of every containerd. */
  pods(): Vm[] {
    return this.deps.vms.list().filter((vm) => vm.spec.pod !== undefined);
  }

  /**
   * Creates and boots the sandbox's VM, its network attached first in the pod's namespace; waits
   * for its agent. A failure leaves no VM and no TAP.
   */
  async createSandbox(req: SandboxRequest): Promise<Vm> {
    const name = podVmName(req.owner, req.namespace, req.sandboxId);
    let network;
    if (req.netns) {
      if (!this.deps.networks) throw new HypercoreError(ErrorCodes.providerUnavailable, 'this hypercored has no pod network support configured');
      network = await this.deps.networks.attach(req.netns);
    }
    const spec: VmSpec = {
      name,
      description: `containerd sandbox ${req.namespace}/${req.sandboxId}`,
      cores: req.cores ?? this.defaults.cores,
      memoryMib: req.memoryMib ?? this.defaults.memoryMib,
      kernelArgs: '',
      driveReadOnly: false,
      provider: this.defaults.provider,
      hypervisor: {},
      pod: { sandboxId: req.sandboxId, namespace: req.namespace, owner: req.owner, events: req.events, slots: this.defaults.slots, ...(req.netns ? { netns: req.netns } : {}), ...(network ? { network } : {}) },
    };
    try {
      return await this.deps.vms.create(spec);
    } catch (err) {
      if (req.netns && network) await this.deps.networks!.detach(req.netns, network).catch((e: unknown) => this.deps.logger.warn({ sandboxId: req.sandboxId, err: asHypercoreError(e).message }, 'removing the network of a pod that failed to start failed'));
      throw err;
    }
  }

  /**
   * Adds a container to a running pod VM: its root disk built (or found in the cache), put in a
   * free slot, and the guest told to mount it and write the container's bundle. Nothing runs yet.
   */
  async addContainer(vm: Vm, req: ContainerRequest): Promise<PodContainer> {
    return this.lock.run(vm.id, async () => {
      if (this.deps.containers.get(vm.id, req.id)) throw new HypercoreError(ErrorCodes.containerExists, `container ${req.id} already exists in pod VM ${vm.name}`);
      const pod = vm.spec.pod;
      if (!pod) throw new HypercoreError(ErrorCodes.invalidArgument, `VM ${vm.name} is not a pod VM`);
      const used = new Set(this.deps.containers.list(vm.id).map((c) => c.slot));
      const slot = Array.from({ length: pod.slots }, (_, i) => i + 1).find((s) => !used.has(s));
      if (slot === undefined) throw new ContainerStateConflictError(`pod VM ${vm.name} has no free root disk slot (it has ${pod.slots}; remove a container first)`);
      const agent = this.agent(vm);
      const paths = this.deps.vms.paths(vm);
      const disk = await this.deps.rootfs.prepare(req.mounts, paths.stateDir, `container-${req.id}`);
      const provider = this.provider(vm);
      const sandboxContainer = this.deps.containers.list(vm.id).find((c) => c.id === pod.sandboxId);
      try {
        await provider.swapDisk!(vm.id, paths, slot, disk.disk);
        await agent.createContainer({
          containerId: req.id,
          diskSerial: slotSerial(slot),
          config: req.guest.config,
          files: req.guest.files,
          ...(sandboxContainer && req.guest.shareNamespaces.length > 0 ? { sandboxId: sandboxContainer.id } : {}),
          shareNamespaces: sandboxContainer ? req.guest.shareNamespaces : [],
        });
      } catch (err) {
        const undo = (what: string) => (e: unknown) => this.log(vm).warn({ containerId: req.id, err: asHypercoreError(e).message }, `${what} after a failed container create failed`);
        await provider.swapDisk!(vm.id, paths, slot, undefined).catch(undo('emptying the disk slot'));
        await this.deps.rootfs.release(disk, this.imagesInUse()).catch(undo('removing the container disk'));
        throw err;
      }
      const container: PodContainer = {
        id: req.id,
        vmId: vm.id,
        bundle: req.bundle,
        slot,
        disk: disk.disk,
        imageKey: disk.imageKey,
        stdio: req.stdio,
        state: 'created',
        createdAt: this.deps.clock.now().toISOString(),
        execs: [],
      };
      this.deps.containers.put(container);
      this.log(vm).info({ containerId: req.id, slot }, 'pod container created');
      return container;
    });
  }

  container(vmId: string, id: string): PodContainer {
    const c = this.deps.containers.get(vmId, id);
    if (!c) throw new ContainerNotFoundError(`container ${id}`);
    return c;
  }

  containers(vmId: string): PodContainer[] {
    return this.deps.containers.list(vmId);
  }

  /** Runs a created container's init process. */
  async start(vmId: string, id: string, term: GuestTerminal): Promise<PodContainer> {
    const c = this.container(vmId, id);
    if (c.state !== 'created') throw new ContainerStateConflictError(`container ${id} is ${c.state}; only a created container can be started`);
    const started = await this.agent(this.deps.vms.get(vmId)).startContainer(id, term);
    const updated = { ...this.container(vmId, id), state: 'running' as const, pid: started.pid };
    this.deps.containers.put(updated);
    return updated;
  }

  /** Records an exec (containerd's Exec); it runs on `startExec`. */
  addExec(vmId: string, id: string, exec: { id: string; stdio: ProcessStdio; process: string }): PodExec {
    const c = this.container(vmId, id);
    if (c.state !== 'running' && c.state !== 'paused') throw new ContainerStateConflictError(`container ${id} is ${c.state}; exec needs a running container`);
    if (c.execs.some((e) => e.id === exec.id)) throw new HypercoreError(ErrorCodes.containerExists, `exec ${exec.id} already exists in container ${id}`);
    const record: PodExec = { ...exec, state: 'created' };
    this.deps.containers.put({ ...c, execs: [...c.execs, record] });
    return record;
  }

  async startExec(vmId: string, id: string, execId: string, term: GuestTerminal): Promise<PodExec> {
    const exec = this.exec(vmId, id, execId);
    if (exec.state !== 'created') throw new ContainerStateConflictError(`exec ${execId} is ${exec.state}; only a created exec can be started`);
    const started = await this.agent(this.deps.vms.get(vmId)).execContainer(id, execId, Buffer.from(exec.process), term);
    return this.updateExec(vmId, id, execId, { state: 'running', pid: started.pid });
  }

  exec(vmId: string, id: string, execId: string): PodExec {
    const exec = this.container(vmId, id).execs.find((e) => e.id === execId);
    if (!exec) throw new ContainerNotFoundError(`exec ${execId} of container ${id}`);
    return exec;
  }

  /** The stdio of a started process (from output offset `fromOffset`). */
  io(vmId: string, id: string, execId: string | undefined, fromOffset: number): ProcessIo {
    return this.session(this.deps.vms.get(vmId)).io(podProcessId(id, execId), fromOffset);
  }

  async resize(vmId: string, id: string, execId: string | undefined, rows: number, cols: number): Promise<void> {
    await this.session(this.deps.vms.get(vmId)).resize(podProcessId(id, execId), rows, cols);
  }

  /** Records how a process ended (its init: the container is stopped, OOM kills noted). */
  async recordExit(vmId: string, id: string, execId: string | undefined, status: number): Promise<ProcessExit> {
    const at = this.deps.clock.now().toISOString();
    if (execId) {
      const exit = { status, at };
      this.updateExec(vmId, id, execId, { state: 'stopped', exit });
      return exit;
    }
    // The VM may be gone (its agent with it): the exit is recorded all the same, without OOM news.
    const oomKills = await Promise.resolve()
      .then(() => this.agent(this.deps.vms.get(vmId)).containerStatus(id))
      .then((s) => s.oomKills, () => 0);
    const exit: ProcessExit = { status, at, ...(oomKills > 0 ? { oomKilled: true } : {}) };
    const c = this.container(vmId, id);
    this.deps.containers.put({ ...c, state: 'stopped', exit, execs: c.execs.map((e) => (e.state === 'stopped' ? e : { ...e, state: 'stopped', exit: e.exit ?? { status: 255, at } })) });
    return exit;
  }

  /**
   * Sends `signal` to the container's init (or every process with `all`), or to an exec. A
   * container that was created but never started has nothing to signal: it is stopped, and that
   * exit is returned so the caller can report it.
   */
  async kill(vmId: string, id: string, execId: string | undefined, signal: number, all: boolean): Promise<ProcessExit | undefined> {
    const c = this.container(vmId, id);
    if (execId) {
      const exec = this.exec(vmId, id, execId);
      if (exec.state !== 'running') throw new ContainerStateConflictError(`exec ${execId} is not running`);
      await this.session(this.deps.vms.get(vmId)).signal(podProcessId(id, execId), signalName(signal));
      return undefined;
    }
    if (c.state === 'stopped') throw new ContainerStateConflictError(`container ${id} is not running`);
    if (c.state === 'created') {
      const exit = { status: 128 + signal, at: this.deps.clock.now().toISOString() };
      this.deps.containers.put({ ...c, state: 'stopped', exit });
      return exit;
    }
    await this.agent(this.deps.vms.get(vmId)).killContainer(id, signalName(signal), all);
    return undefined;
  }

  async pause(vmId: string, id: string): Promise<void> {
    const c = this.container(vmId, id);
    if (c.state !== 'running') throw new ContainerStateConflictError(`container ${id} is ${c.state}; only a running container can be paused`);
    await this.agent(this.deps.vms.get(vmId)).pauseContainer(id);
    this.deps.containers.put({ ...this.container(vmId, id), state: 'paused' });
  }

  async resume(vmId: string, id: string): Promise<void> {
    const c = this.container(vmId, id);
    if (c.state !== 'paused') throw new ContainerStateConflictError(`container ${id} is ${c.state}; only a paused container can be resumed`);
    await this.agent(this.deps.vms.get(vmId)).resumeContainer(id);
    this.deps.containers.put({ ...this.container(vmId, id), state: 'running' });
  }

  /** New cgroup limits (OCI LinuxResources JSON) for a running container. */
  async update(vmId: string, id: string, resourcesJson: Uint8Array): Promise<void> {
    const c = this.container(vmId, id);
    if (c.state !== 'running' && c.state !== 'paused') throw new ContainerStateConflictError(`container ${id} is ${c.state}; only a running container can be updated`);
    await this.agent(this.deps.vms.get(vmId)).updateContainer(id, resourcesJson);
  }

  async stats(vmId: string, id: string): Promise<GuestContainerStats> {
    this.container(vmId, id);
    return this.agent(this.deps.vms.get(vmId)).containerStats(id);
  }

  async pids(vmId: string, id: string): Promise<number[]> {
    this.container(vmId, id);
    return this.agent(this.deps.vms.get(vmId)).containerPids(id);
  }

  removeExec(vmId: string, id: string, execId: string): PodExec {
    const exec = this.exec(vmId, id, execId);
    if (exec.state === 'running') throw new ContainerStateConflictError(`exec ${execId} is still running; kill it first`);
    const c = this.container(vmId, id);
    this.deps.containers.put({ ...c, execs: c.execs.filter((e) => e.id !== execId) });
    return exec;
  }

  /**
   * Removes a stopped (or never started) container: the guest forgets it and unmounts its disk, the
   * slot is emptied, its writable layer deleted. A VM that is gone already is no obstacle.
   */
  async removeContainer(vmId: string, id: string): Promise<PodContainer> {
    return this.lock.run(vmId, async () => {
      const c = this.container(vmId, id);
      if (c.state === 'running' || c.state === 'paused') throw new ContainerStateConflictError(`container ${id} is ${c.state}; kill it first`);
      const vm = this.vmIfRunning(vmId);
      if (vm) {
        await this.agent(vm).deleteContainer(id);
        await this.provider(vm).swapDisk!(vm.id, this.deps.vms.paths(vm), c.slot, undefined);
      }
      this.deps.containers.delete(vmId, id);
      await this.deps.rootfs.release({ disk: c.disk, imageKey: c.imageKey }, this.imagesInUse()).catch((err: unknown) => this.deps.logger.warn({ vmId, containerId: id, err: asHypercoreError(err).message }, 'removing a container disk failed'));
      return c;
    });
  }

  /** Removes the pod VM with everything in it: containers, disks, TAP. Idempotent. */
  async destroySandbox(vmId: string): Promise<void> {
    await this.lock.run(vmId, async () => {
      const vm = this.deps.vms.list().find((v) => v.id === vmId);
      const records = this.deps.containers.list(vmId);
      for (const c of records) this.deps.containers.delete(vmId, c.id);
      if (!vm) return;
      await this.deps.vms.delete(vm.id, { force: true });
      const pod = vm.spec.pod;
      if (pod?.netns && pod.network) await this.deps.networks?.detach(pod.netns, pod.network).catch((err: unknown) => this.log(vm).warn({ err: asHypercoreError(err).message }, 'removing the pod network failed'));
      for (const c of records) await this.deps.rootfs.release({ disk: c.disk, imageKey: c.imageKey }, this.imagesInUse()).catch((err: unknown) => this.log(vm).warn({ containerId: c.id, err: asHypercoreError(err).message }, 'removing a container disk failed'));
    });
  }

  private imagesInUse(): Set<string> {
    return new Set(this.deps.containers.list().map((c) => c.imageKey));
  }

  /** Records how far a process's output was copied to containerd, so a restarted daemon resumes there. */
  saveOutputOffset(vmId: string, id: string, execId: string | undefined, offset: number): void {
    const c = this.deps.containers.get(vmId, id);
    if (!c) return;
    if (!execId) this.deps.containers.put({ ...c, outputOffset: offset });
    else if (c.execs.some((e) => e.id === execId)) this.updateExec(vmId, id, execId, { outputOffset: offset });
  }

  private updateExec(vmId: string, id: string, execId: string, patch: Partial<PodExec>): PodExec {
    const c = this.container(vmId, id);
    let updated: PodExec | undefined;
    const execs = c.execs.map((e) => (e.id === execId ? (updated = { ...e, ...patch }) : e));
    if (!updated) throw new ContainerNotFoundError(`exec ${execId} of container ${id}`);
    this.deps.containers.put({ ...c, execs });
    return updated;
  }

  private vmIfRunning(vmId: string): Vm | undefined {
    const vm = this.deps.vms.list().find((v) => v.id === vmId);
    return vm && vm.state === 'running' ? vm : undefined;
  }

  private session(vm: Vm): AgentSession {
    return this.deps.vms.agentSession(vm.id);
  }

  private agent(vm: Vm): PodAgent {
    const session = this.session(vm);
    if (!session.containers) throw new HypercoreError(ErrorCodes.agentUnavailable, `the agent of VM ${vm.name} runs no containers`);
    return session.containers();
  }

  private provider(vm: Vm) {
    const provider = this.deps.providers.get(vm.provider);
    if (!provider?.swapDisk) throw new HypercoreError(ErrorCodes.providerUnavailable, `provider ${vm.provider} cannot swap disks into a running VM, which pods need`);
    return provider;
  }

  private log(vm: Vm): Logger {
    return this.deps.logger.child({ vmId: vm.id, vmName: vm.name });
  }
}
