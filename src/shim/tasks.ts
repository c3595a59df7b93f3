/**
 * containerd's tasks on pod VMs: what each Task call does, over the pod service (VM, containers)
 * and the live plumbing this layer owns: the stdio pumps between the agent and containerd's FIFOs,
 * the processes' exits (Wait), and the events containerd is told, in its order.
 *
 * A task is a pod container. The sandbox task (CRI's sandbox, or `ctr run`'s lone container) makes
 * the pod VM at Create and takes it down at Delete; a task whose CRI annotations name a sandbox
 * joins that sandbox's VM.
 */
import { asHypercoreError, ContainerNotFoundError, ContainerStateConflictError, ErrorCodes, HypercoreError } from '../core/errors.js';
import type { ProcessStdio, PodContainer, PodExec, ProcessExit } from '../core/pod.js';
import { podProcessId } from '../core/pod.js';
import type { Logger } from '../core/ports.js';
import type { PodService } from '../core/sandboxes.js';
import type { Vm } from '../core/vm.js';
import type { VmService } from '../core/vm-service.js';
import { identifierProblem } from '../agent/protocol/container-messages.js';
import { inspectHostFile, numberAnnotation, podRole, readBoundedFile, readBundleSpec, VM_CORES_ANNOTATION, VM_MEMORY_ANNOTATION } from './bundle.js';
import type { EventPublisher, EventPublishers } from './events.js';
import { checkStdioPath } from './fifo.js';
import { guestSpec, MAX_BOUND_FILE_BYTES, networkNamespacePath } from './guest-spec.js';
import { metricsOf } from './metrics.js';
import { ProcessPump } from './process-pump.js';

/** Keeps the stdio FIFOs of running processes open outside hypercored (the shim keeper). */
export interface FifoHolder {
  hold(key: string, fifos: string[], stdin?: string): void;
  release(key: string): void;
}

/** Which containerd, namespace and sandbox a shim socket serves. */
export interface ShimContext {
  /** containerd's gRPC address (`-address`). */
  owner: string;
  /** containerd's TTRPC address (TTRPC_ADDRESS), where events go. */
  events: string;
  namespace: string;
  /** The sandbox's task id: the pod this socket serves. */
  sandboxId: string;
}

export interface ProcessState {
  id: string;
  execId: string;
  bundle: string;
  pid: number;
  status: 'created' | 'running' | 'paused' | 'stopped';
  stdio: ProcessStdio;
  exit?: ProcessExit;
}

export interface TaskExit {
  pid: number;
  exitStatus: number;
  exitedAt?: string;
}

interface Waiter {
  promise: Promise<ProcessExit>;
  resolve: (exit: ProcessExit) => void;
}

interface Pumping {
  pump: ProcessPump;
  vmId: string;
  id: string;
  execId: string;
  /** The offset last saved to the container record. */
  saved: number;
}

/** How often copied-output offsets are saved (a restarted daemon repeats at most this much output). */
const OFFSET_SAVE_MS = 1000;
/**
 * How long a restarted daemon waits for a running pod VM's agent; a VM whose agent does not come
 * back by then is stopped and its processes reported exited.
 */
const RESTORE_AGENT_WAIT_MS = 120_000;

/** Exit status containerd reports for a process whose VM went away (as for a shim that died). */
const LOST_EXIT_STATUS = 255;
/** Most VM memory and cores a sandbox may ask for by annotation. */
const MAX_MEMORY_MIB = 64 * 1024;
const MAX_CORES = 64;

export class TaskEngine {
  private readonly pumps = new Map<string, Pumping>();
  private readonly waiters = new Map<string, Waiter>();
  private readonly offsetTimer: NodeJS.Timeout;
  /** Pod VMs whose agent this (restarted) daemon has not reached yet: calls on them wait for it. */
  private readonly reconnecting = new Map<string, Promise<void>>();
  /** Paused pod VMs a restarted daemon follows the processes of once they run again. */
  private readonly resuming = new Set<string>();
  /** Processes whose exit is being recorded and reported (each is reported once). */
  private readonly ending = new Set<string>();
  /** Per pod VM, the reports of its processes' ends in progress: one pass at a time keeps their order. */
  private readonly goneReports = new Map<string, Promise<void>>();
  private stopping = false;

  constructor(
    private readonly pods: PodService,
    private readonly vms: VmService,
    private readonly publishers: EventPublishers,
    private readonly logger: Logger,
    private readonly holder?: FifoHolder,
    private readonly restoreAgentWaitMs = RESTORE_AGENT_WAIT_MS,
  ) {
    this.offsetTimer = setInterval(() => this.saveOffsets(), OFFSET_SAVE_MS);
    this.offsetTimer.unref();
    // A pod VM that stops under its containers (crash, `hypercore stop`): its processes are gone.
    // This also hears reconcile find a pod VM whose VMM died while hypercored was down.
    this.vms.events.subscribe((event) => {
      if (event.type !== 'state-changed') return;
      if (event.state === 'stopped' || event.state === 'failed') {
        this.resuming.delete(event.vmId);
        void this.vmGone(event.vmId);
      } else if (event.state === 'running' && this.resuming.delete(event.vmId)) {
        this.restoreRunning(event.vmId);
      }
    });
  }

  /** Create: the sandbox's VM (for a sandbox task), then the container in it. */
  async create(ctx: ShimContext, req: { id: string; bundle: string; rootfs: { type: string; source: string; options: string[] }[]; stdio: ProcessStdio; checkpoint: string }): Promise<{ pid: number }> {
    checkId('task id', req.id);
    for (const [what, path] of Object.entries({ stdin: req.stdio.stdin, stdout: req.stdio.stdout, stderr: req.stdio.stderr })) checkStdioPath(what, path);
    if (req.checkpoint) throw new HypercoreError(ErrorCodes.invalidArgument, 'restoring a checkpoint is not supported by the Hypercore shim');
    const spec = await readBundleSpec(req.bundle);
    const role = podRole(spec);
    const guest = guestSpec(spec, inspectHostFile, role.kind === 'sandbox');
    const files = [];
    for (const f of guest.files) files.push({ name: f.name, content: await readBoundedFile(f.hostPath, MAX_BOUND_FILE_BYTES, 'bind mount source'), mode: 0o644 });
    const sandboxId = role.kind === 'sandbox' ? req.id : role.sandboxId;
    if (role.kind === 'container' && sandboxId !== ctx.sandboxId) throw new HypercoreError(ErrorCodes.invalidArgument, `task ${req.id} belongs to sandbox ${sandboxId}, but this shim socket serves sandbox ${ctx.sandboxId}`);
    let vm = this.pods.findSandbox(ctx.owner, ctx.namespace, sandboxId);
    let made = false;
    if (role.kind === 'sandbox') {
      if (vm && this.pods.containers(vm.id).length > 0) throw new HypercoreError(ErrorCodes.containerExists, `task ${req.id} already exists`);
      // A VM left by an earlier attempt that never got its container: start over.
      if (vm) await this.pods.destroySandbox(vm.id);
      const netns = networkNamespacePath(spec);
      const memoryMib = numberAnnotation(spec, VM_MEMORY_ANNOTATION, MAX_MEMORY_MIB);
      const cores = numberAnnotation(spec, VM_CORES_ANNOTATION, MAX_CORES);
      vm = await this.pods.createSandbox({ owner: ctx.owner, events: ctx.events, namespace: ctx.namespace, sandboxId, ...(netns ? { netns } : {}), ...(memoryMib ? { memoryMib } : {}), ...(cores ? { cores } : {}) });
      made = true;
    } else if (!vm) {
      throw new ContainerNotFoundError(`sandbox ${sandboxId} (no pod VM runs it)`);
    }
    await this.agentReady(vm);
    let container: PodContainer;
    try {
      container = await this.pods.addContainer(vm, {
        id: req.id,
        bundle: req.bundle,
        mounts: req.rootfs.map((m) => ({ type: m.type, source: m.source, options: m.options })),
        guest: { config: Buffer.from(JSON.stringify(guest.config)), files, shareNamespaces: guest.shareNamespaces },
        stdio: req.stdio,
      });
    } catch (err) {
      if (made) await this.pods.destroySandbox(vm.id).catch((e: unknown) => this.logger.warn({ sandboxId, err: asHypercoreError(e).message }, 'removing the VM of a sandbox that failed to create failed'));
      throw err;
    }
    this.publisher(vm).publish('create', { containerId: req.id, bundle: req.bundle, rootfs: req.rootfs, io: { ...req.stdio }, checkpoint: '', pid: 0 });
    return { pid: container.pid ?? 0 };
  }

  /** Start: runs the container's init or an exec; its stdio is connected before it runs. */
  async start(ctx: ShimContext, id: string, execId: string): Promise<{ pid: number }> {
    const { vm, container } = this.find(ctx, id);
    await this.agentReady(vm);
    const stdio = execId ? this.pods.exec(vm.id, id, execId).stdio : container.stdio;
    const pump = await ProcessPump.open(stdio, this.logger);
    let pid: number;
    try {
      if (execId) pid = (await this.pods.startExec(vm.id, id, execId, { terminal: stdio.terminal })).pid!;
      else pid = (await this.pods.start(vm.id, id, { terminal: stdio.terminal })).pid!;
    } catch (err) {
      pump.detach();
      throw err;
    }
    // Published before the pump can see the exit, so start always comes before exit.
    if (execId) this.publisher(vm).publish('execStarted', { containerId: id, execId, pid });
    else this.publisher(vm).publish('start', { containerId: id, pid });
    this.pump(vm, id, execId, pid, pump, 0);
    return { pid };
  }

  /** Exec: records the process; it runs on Start. */
  exec(ctx: ShimContext, req: { id: string; execId: string; stdio: ProcessStdio; process: string }): void {
    checkId('exec id', req.execId);
    for (const [what, path] of Object.entries({ stdin: req.stdio.stdin, stdout: req.stdio.stdout, stderr: req.stdio.stderr })) checkStdioPath(what, path);
    const { vm } = this.find(ctx, req.id);
    checkProcessJson(req.process);
    this.pods.addExec(vm.id, req.id, { id: req.execId, stdio: req.stdio, process: req.process });
    this.publisher(vm).publish('execAdded', { containerId: req.id, execId: req.execId });
  }

  state(ctx: ShimContext, id: string, execId: string): ProcessState {
    const { container } = this.find(ctx, id);
    if (execId) {
      const exec = container.execs.find((e) => e.id === execId);
      if (!exec) throw new ContainerNotFoundError(`exec ${execId} of task ${id}`);
      return { id: execId, execId, bundle: container.bundle, pid: exec.pid ?? 0, status: exec.state, stdio: exec.stdio, ...(exec.exit ? { exit: exec.exit } : {}) };
    }
    return { id, execId: '', bundle: container.bundle, pid: container.pid ?? 0, status: container.state, stdio: container.stdio, ...(container.exit ? { exit: container.exit } : {}) };
  }

  /** Wait: resolves when the process has exited (at once if it has). */
  async wait(ctx: ShimContext, id: string, execId: string, signal: AbortSignal): Promise<ProcessExit> {
    const { vm, container } = this.find(ctx, id);
    const done = execId ? this.pods.exec(vm.id, id, execId).exit : container.exit;
    if (done) return done;
    const waiter = this.waiter(processKey(vm.id, id, execId));
    return new Promise<ProcessExit>((resolve, reject) => {
      const onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new Error('wait cancelled'));
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      void waiter.promise.then((exit) => {
        signal.removeEventListener('abort', onAbort);
        resolve(exit);
      });
    });
  }

  /** Kill: a signal to the init (or all processes), or to an exec. */
  async kill(ctx: ShimContext, id: string, execId: string, signal: number, all: boolean): Promise<void> {
    const { vm, container } = this.find(ctx, id);
    const state = execId ? this.pods.exec(vm.id, id, execId).state : container.state;
    // What runc says, and what containerd and CRI tolerate when stopping something that ended.
    if (state === 'stopped') throw new ContainerNotFoundError('process already finished:');
    if (!(signal >= 1 && signal <= 64)) throw new HypercoreError(ErrorCodes.invalidArgument, `signal ${signal} is not a valid signal number`);
    await this.agentReady(vm);
    const exit = await this.pods.kill(vm.id, id, execId || undefined, signal, all);
    if (exit) this.exited(vm, id, execId, container.pid ?? 0, exit);
  }

  async delete(ctx: ShimContext, id: string, execId: string): Promise<TaskExit> {
    const { vm, container } = this.find(ctx, id);
    if (execId) {
      const exec = this.pods.exec(vm.id, id, execId);
      if (exec.state === 'running') throw new ContainerStateConflictError(`exec ${execId} of task ${id} is still running; kill it first`);
      this.pods.removeExec(vm.id, id, execId);
      this.forget(processKey(vm.id, id, execId));
      return exitOf(exec);
    }
    if (container.state === 'running' || container.state === 'paused') throw new ContainerStateConflictError(`task ${id} is ${container.state}; kill it before deleting it`);
    for (const exec of container.execs) this.forget(processKey(vm.id, id, exec.id));
    this.forget(processKey(vm.id, id, ''));
    if (id === vm.spec.pod?.sandboxId) await this.destroySandbox(vm);
    else await this.pods.removeContainer(vm.id, id);
    const result = exitOf(container);
    this.publisher(vm).publish('delete', { containerId: id, pid: result.pid, exitStatus: result.exitStatus, ...(stamp(result.exitedAt)) , id: '' });
    return result;
  }

  async pids(ctx: ShimContext, id: string): Promise<{ pid: number; execId?: string }[]> {
    const { vm, container } = this.find(ctx, id);
    await this.agentReady(vm);
    const pids = await this.pods.pids(vm.id, id);
    return pids.map((pid) => {
      const exec = container.execs.find((e) => e.pid === pid && e.state === 'running');
      return exec ? { pid, execId: exec.id } : { pid };
    });
  }

  async pause(ctx: ShimContext, id: string): Promise<void> {
    const { vm } = this.find(ctx, id);
    await this.agentReady(vm);
    await this.pods.pause(vm.id, id);
    this.publisher(vm).publish('paused', { containerId: id });
  }

  async resume(ctx: ShimContext, id: string): Promise<void> {
    const { vm } = this.find(ctx, id);
    await this.agentReady(vm);
    await this.pods.resume(vm.id, id);
    this.publisher(vm).publish('resumed', { containerId: id });
  }

  async stats(ctx: ShimContext, id: string) {
    const { vm } = this.find(ctx, id);
    await this.agentReady(vm);
    return metricsOf(await this.pods.stats(vm.id, id));
  }

  async update(ctx: ShimContext, id: string, resourcesJson: Uint8Array): Promise<void> {
    const { vm } = this.find(ctx, id);
    await this.agentReady(vm);
    await this.pods.update(vm.id, id, resourcesJson);
  }

  async resize(ctx: ShimContext, id: string, execId: string, rows: number, cols: number): Promise<void> {
    const { vm } = this.find(ctx, id);
    await this.agentReady(vm);
    if (!(rows > 0 && cols > 0)) return;
    await this.pods.resize(vm.id, id, execId || undefined, rows, cols);
  }

  closeStdin(ctx: ShimContext, id: string, execId: string): void {
    const { vm } = this.find(ctx, id);
    this.pumps.get(processKey(vm.id, id, execId))?.pump.closeStdin();
  }

  /**
   * At daemon start: the stdio of every process that still runs in a pod VM is copied again, from
   * the output offset the previous daemon saved, and its exit is reported when it comes (a
   * process that ended meanwhile is reported at once: the agent keeps its exit status). Runs in the
   * background: a pod VM's agent reconnects in its own time.
   */
  async restore(): Promise<void> {
    const running: Vm[] = [];
    const gone: Vm[] = [];
    for (const vm of this.pods.pods()) {
      if (vm.state === 'running') running.push(vm);
      // A paused VM's agent is reconnected when it is resumed; its processes are followed then.
      else if (vm.state === 'paused') this.resuming.add(vm.id);
      // Stopped or failed while hypercored was down: what ran in it has ended, unheard.
      else if (vm.state === 'stopped' || vm.state === 'failed') gone.push(vm);
    }
    for (const vm of gone) await this.vmGone(vm.id);
    await Promise.all(running.map((vm) => this.restorePodLogged(vm)));
  }

  private restoreRunning(vmId: string): void {
    const vm = this.pods.pods().find((v) => v.id === vmId);
    if (vm) void this.restorePodLogged(vm);
  }

  private restorePodLogged(vm: Vm): Promise<void> {
    return this.restorePod(vm).catch((err: unknown) => this.logger.warn({ vmId: vm.id, err: asHypercoreError(err).message }, 'could not follow the processes of a pod again'));
  }

  /**
   * At daemon start, before the keeper drops what no hypercored asked for: the FIFOs of the
   * processes that still ran stay held (their readers must not see end of file).
   */
  holdRunning(): void {
    for (const vm of this.pods.pods()) {
      for (const c of this.pods.containers(vm.id)) {
        if (c.state === 'running' || c.state === 'paused') this.holdFifos(processKey(vm.id, c.id, ''), c.stdio);
        for (const e of c.execs) if (e.state === 'running') this.holdFifos(processKey(vm.id, c.id, e.id), e.stdio);
      }
    }
  }

  private holdFifos(key: string, stdio: ProcessStdio): void {
    this.holder?.hold(key, [stdio.stdout, ...(stdio.terminal ? [] : [stdio.stderr])].filter((p) => p !== ''), stdio.stdin || undefined);
  }

  private async restorePod(vm: Vm): Promise<void> {
    const agent = this.agentBack(vm).finally(() => this.reconnecting.delete(vm.id));
    this.reconnecting.set(vm.id, agent);
    try {
      await agent;
    } catch (err) {
      if (this.stopping || !this.stillRunning(vm.id)) throw err;
      // The VMM runs but its guest never answers again (hung or broken): its containers cannot be
      // reached, waited for or stopped. Left so, containerd would wait on them forever; stopped,
      // the VM's state change reports every process exited (255), and CRI can clean up.
      this.logger.warn({ vmId: vm.id, err: asHypercoreError(err).message }, 'the agent of a pod VM did not come back after the restart: stopping the VM');
      await this.vms.stop(vm.id, { force: true, timeoutMs: 0 });
      return;
    }
    for (const c of this.pods.containers(vm.id)) {
      if (c.state === 'running' || c.state === 'paused') await this.follow(vm, c.id, '', c.pid ?? 0, c.stdio, c.outputOffset ?? 0);
      for (const e of c.execs) if (e.state === 'running') await this.follow(vm, c.id, e.id, e.pid ?? 0, e.stdio, e.outputOffset ?? 0);
    }
  }

  /** Resolves once the pod VM's agent is connected again (bounded). */
  private async agentBack(vm: Vm): Promise<void> {
    const deadline = Date.now() + this.restoreAgentWaitMs;
    for (;;) {
      try {
        this.vms.agentSession(vm.id);
        return;
      } catch (err) {
        // A VM that stopped meanwhile has no agent to wait for (vmGone reports its processes).
        if (this.stopping || Date.now() >= deadline || !this.stillRunning(vm.id)) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  private stillRunning(vmId: string): boolean {
    return this.pods.pods().some((v) => v.id === vmId && v.state === 'running');
  }

  /** A call that needs the pod's agent, right after a daemon restart, waits for it to be reached. */
  private async agentReady(vm: Vm): Promise<void> {
    await this.reconnecting.get(vm.id)?.catch(() => undefined);
  }

  private async follow(vm: Vm, id: string, execId: string, pid: number, stdio: ProcessStdio, offset: number): Promise<void> {
    if (this.pumps.has(processKey(vm.id, id, execId))) return;
    try {
      this.pump(vm, id, execId, pid, await ProcessPump.open(stdio, this.logger, { resumed: true }), offset);
      this.logger.info({ vmId: vm.id, id, execId, offset }, 'following a pod process again');
    } catch (err) {
      this.logger.warn({ vmId: vm.id, id, execId, err: asHypercoreError(err).message }, 'could not follow a pod process again');
    }
  }

  /** hypercored stops: the processes run on, and what was copied so far is saved for the next one. */
  stop(): void {
    this.stopping = true;
    clearInterval(this.offsetTimer);
    this.saveOffsets();
  }

  private saveOffsets(): void {
    for (const p of this.pumps.values()) {
      if (p.pump.offset === p.saved) continue;
      p.saved = p.pump.offset;
      try {
        this.pods.saveOutputOffset(p.vmId, p.id, p.execId || undefined, p.saved);
      } catch (err) {
        this.logger.debug({ id: p.id, err: asHypercoreError(err).message }, 'saving an output offset failed');
      }
    }
  }

  /** The task's init pid (0 until started, or for a task this daemon does not know). */
  taskPid(ctx: ShimContext, id: string): number {
    try {
      return this.find(ctx, id).container.pid ?? 0;
    } catch {
      return 0; // not lost: Connect before Create is answered with no task pid, as runc's shim does
    }
  }

  /** Whether the socket's sandbox still has tasks (Shutdown keeps serving until it has none). */
  hasTasks(ctx: ShimContext): boolean {
    const vm = this.pods.findSandbox(ctx.owner, ctx.namespace, ctx.sandboxId);
    return vm !== undefined && this.pods.containers(vm.id).length > 0;
  }

  /**
   * `delete` of the shim binary: containerd lost its connection and cleans up. Whatever of the
   * task is left is killed and removed, as runc's shim does; returns how it ended.
   */
  async cleanup(ctx: Omit<ShimContext, 'sandboxId' | 'events'>, id: string): Promise<TaskExit> {
    const found = this.pods.pods().filter((vm) => vm.spec.pod?.owner === ctx.owner && vm.spec.pod.namespace === ctx.namespace).flatMap((vm) => this.pods.containers(vm.id).filter((c) => c.id === id).map((c) => ({ vm, c })));
    const killed: TaskExit = { pid: 0, exitStatus: 128 + 9, exitedAt: new Date().toISOString() };
    if (found.length === 0) {
      // Nothing left but perhaps an empty VM made for this sandbox.
      const vm = this.pods.findSandbox(ctx.owner, ctx.namespace, id);
      if (vm) await this.destroySandbox(vm);
      return killed;
    }
    const { vm, c } = found[0]!;
    if (c.state === 'running' || c.state === 'paused') await this.pods.kill(vm.id, id, undefined, 9, true).catch((err: unknown) => this.logger.warn({ id, err: asHypercoreError(err).message }, 'killing a task during cleanup failed'));
    if (id === vm.spec.pod?.sandboxId) await this.destroySandbox(vm);
    else await this.pods.removeContainer(vm.id, id).catch(async () => this.pods.destroySandbox(vm.id));
    return c.exit ? exitOf(c) : { ...killed, pid: c.pid ?? 0 };
  }

  private async destroySandbox(vm: Vm): Promise<void> {
    // Its other containers die with the VM: containerd must hear that they exited.
    for (const c of this.pods.containers(vm.id)) {
      if (c.id === vm.spec.pod?.sandboxId || c.state === 'stopped') continue;
      this.pumps.get(processKey(vm.id, c.id, ''))?.pump.detach();
      const exit = await this.pods.recordExit(vm.id, c.id, undefined, LOST_EXIT_STATUS).catch(() => ({ status: LOST_EXIT_STATUS, at: new Date().toISOString() }));
      this.exited(vm, c.id, '', c.pid ?? 0, exit);
    }
    await this.pods.destroySandbox(vm.id);
  }

  /** Copies the process's stdio until it exits, then records and reports the exit. */
  private pump(vm: Vm, id: string, execId: string, pid: number, pump: ProcessPump, offset: number): void {
    const key = processKey(vm.id, id, execId);
    this.pumps.set(key, { pump, vmId: vm.id, id, execId, saved: offset });
    // While it runs the keeper holds its output FIFOs too: if hypercored dies, containerd's reader sees no end of file.
    const stdio = this.stdioOf(vm, id, execId);
    if (stdio) this.holdFifos(key, stdio);
    const done = pump.run(this.pods.io(vm.id, id, execId || undefined, offset), offset);
    void done.then(async (end) => {
      if (this.pumps.get(key)?.pump === pump) this.pumps.delete(key);
      // hypercored is stopping: the process runs on, and the next hypercored follows it again.
      if (this.stopping) return;
      if (end.kind === 'lost') this.logger.warn({ vmId: vm.id, id, execId, reason: end.reason }, 'lost the stdio of a pod process');
      await this.ended(vm, id, execId, pid, end.kind === 'exit' ? end.status.exitCode : LOST_EXIT_STATUS);
    });
  }

  /** Records the process's exit and reports it, once (a pump and a VM going away may both see it). */
  private async ended(vm: Vm, id: string, execId: string, pid: number, status: number): Promise<void> {
    const key = processKey(vm.id, id, execId);
    if (this.ending.has(key)) return;
    this.ending.add(key);
    // The keeper lets its output FIFOs go: containerd's reader sees end of file.
    this.holder?.release(key);
    try {
      let exit: ProcessExit;
      try {
        exit = await this.pods.recordExit(vm.id, id, execId || undefined, status);
      } catch (err) {
        // The container was removed meanwhile (its VM destroyed): report the exit all the same.
        this.logger.debug({ id, execId, err: asHypercoreError(err).message }, 'exit of a process whose container is gone');
        exit = { status, at: new Date().toISOString() };
      }
      this.exited(vm, id, execId, pid, exit);
    } finally {
      this.ending.delete(key);
    }
  }

  private exited(vm: Vm, id: string, execId: string, pid: number, exit: ProcessExit): void {
    const publisher = this.publisher(vm);
    if (exit.oomKilled && !execId) publisher.publish('oom', { containerId: id });
    publisher.publish('exit', { containerId: id, id: execId || id, pid, exitStatus: exit.status, ...stamp(exit.at) });
    this.waiter(processKey(vm.id, id, execId)).resolve(exit);
  }

  /**
   * The pod VM is down: every process of it that had not ended has. Processes that are pumped end
   * through their pumps (the agent's stream breaks); the rest here: never started, or not followed
   * (the VM went down while hypercored was not running, or before it followed them again). As
   * containerd does for a task whose shim vanished: status 255, now. A container's execs come
   * before its init, and the sandbox's container last (the pod ends with it).
   */
  private vmGone(vmId: string): Promise<void> {
    const next = (this.goneReports.get(vmId) ?? Promise.resolve()).then(() => this.reportGone(vmId));
    const settled = next.catch((err: unknown) => this.logger.warn({ vmId, err: asHypercoreError(err).message }, 'reporting the ends of the processes of a pod VM that went down failed'));
    this.goneReports.set(vmId, settled);
    void settled.then(() => {
      if (this.goneReports.get(vmId) === settled) this.goneReports.delete(vmId);
    });
    return settled;
  }

  private async reportGone(vmId: string): Promise<void> {
    const vm = this.pods.pods().find((v) => v.id === vmId);
    if (!vm) return;
    const sandboxId = vm.spec.pod?.sandboxId;
    const containers = this.pods.containers(vmId);
    const ordered = [...containers.filter((c) => c.id !== sandboxId), ...containers.filter((c) => c.id === sandboxId)];
    for (const c of ordered) {
      for (const e of c.execs) {
        if (e.state !== 'stopped' && !this.pumps.has(processKey(vmId, c.id, e.id))) await this.ended(vm, c.id, e.id, e.pid ?? 0, LOST_EXIT_STATUS);
      }
      if (c.state !== 'stopped' && !this.pumps.has(processKey(vmId, c.id, ''))) await this.ended(vm, c.id, '', c.pid ?? 0, LOST_EXIT_STATUS);
    }
  }

  private waiter(key: string): Waiter {
    let w = this.waiters.get(key);
    if (!w) {
      let resolve: (exit: ProcessExit) => void = () => {};
      const promise = new Promise<ProcessExit>((r) => (resolve = r));
      w = { promise, resolve };
      this.waiters.set(key, w);
    }
    return w;
  }

  private forget(key: string): void {
    this.waiters.delete(key);
    this.holder?.release(key);
    this.pumps.get(key)?.pump.detach();
    this.pumps.delete(key);
  }

  private stdioOf(vm: Vm, id: string, execId: string): ProcessStdio | undefined {
    const c = this.pods.containers(vm.id).find((x) => x.id === id);
    return execId ? c?.execs.find((e) => e.id === execId)?.stdio : c?.stdio;
  }

  private find(ctx: ShimContext, id: string): { vm: Vm; container: PodContainer } {
    const vm = this.pods.findSandbox(ctx.owner, ctx.namespace, ctx.sandboxId);
    const container = vm ? this.pods.containers(vm.id).find((c) => c.id === id) : undefined;
    if (!vm || !container) throw new ContainerNotFoundError(`task ${id}`);
    return { vm, container };
  }

  private publisher(vm: Vm): EventPublisher {
    return this.publishers.for(vm.spec.pod!.events, vm.spec.pod!.namespace);
  }
}

function processKey(vmId: string, id: string, execId: string): string {
  return `${vmId}/${podProcessId(id, execId || undefined)}`;
}

function checkId(what: string, id: string): void {
  const problem = identifierProblem(what, id);
  if (problem) throw new HypercoreError(ErrorCodes.invalidArgument, problem);
}

function exitOf(p: PodContainer | PodExec): TaskExit {
  return { pid: p.pid ?? 0, exitStatus: p.exit?.status ?? 0, ...(p.exit ? { exitedAt: p.exit.at } : {}) };
}

function stamp(iso: string | undefined): { exitedAt?: { seconds: number; nanos: number } } {
  if (!iso) return {};
  const ms = Date.parse(iso);
  return { exitedAt: { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 } };
}

/** The OCI process of an exec, as JSON with something to run. */
function checkProcessJson(text: string): void {
  let p: unknown;
  try {
    p = JSON.parse(text);
  } catch (err) {
    throw new HypercoreError(ErrorCodes.invalidArgument, `the exec's process spec is not JSON: ${(err as Error).message}`);
  }
  const args = (p as { args?: unknown } | null)?.args;
  if (!Array.isArray(args) || args.length === 0 || typeof args[0] !== 'string' || args[0] === '') throw new HypercoreError(ErrorCodes.invalidArgument, "the exec's process spec has no args");
}
