/**
 * hypercored's side of the containerd shim: the shim binary's `start` and `delete` (its only two
 * commands; containerd runs it for nothing else), the pod sockets, the task engine and the event
 * queues. `start` answers with the pod's socket address and the binary exits, so no process stays
 * behind per pod. containerd's connections are held by the shim keeper (keeper/), one small process
 * for all pods, so they outlive a crash or restart of hypercored.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { asHypercoreError, ErrorCodes, HypercoreError } from '../core/errors.js';
import type { Logger } from '../core/ports.js';
import type { PodService } from '../core/sandboxes.js';
import type { VmService } from '../core/vm-service.js';
import { identifierProblem } from '../agent/protocol/container-messages.js';
import { podRole, readBundleSpec } from './bundle.js';
import { EventPublishers } from './events.js';
import { KeeperLink } from './keeper/link.js';
import { takePendingDeletes } from './pending-deletes.js';
import { ShimSockets } from './sockets.js';
import { TaskEngine, type ShimContext, type TaskExit } from './tasks.js';

export interface ShimStartRequest {
  namespace?: string;
  id?: string;
  bundle?: string;
  /** containerd's address (`-address`). */
  address?: string;
  /** containerd's TTRPC address (TTRPC_ADDRESS). */
  ttrpcAddress?: string;
}

export type ShimDeleteRequest = Omit<ShimStartRequest, 'ttrpcAddress'>;

export interface ShimHostDeps {
  pods: PodService;
  vms: VmService;
  /** hypercored's run dir; the sockets go in its `shim/`. */
  runDir: string;
  logger: Logger;
  /** Hold containerd's connections in the shim keeper process (default true; false: hypercored listens itself). */
  keeper?: boolean;
}

function required(name: string, value: string | undefined): string {
  if (typeof value !== 'string' || value === '') throw new HypercoreError(ErrorCodes.invalidArgument, `${name} is required`);
  return value;
}

function identifier(name: string, value: string | undefined): string {
  const v = required(name, value);
  const problem = identifierProblem(name, v);
  if (problem) throw new HypercoreError(ErrorCodes.invalidArgument, problem);
  return v;
}

function absolute(name: string, value: string | undefined): string {
  const v = required(name, value);
  if (!v.startsWith('/') || v.includes('\0')) throw new HypercoreError(ErrorCodes.invalidArgument, `${name} "${v}" must be an absolute path`);
  return v;
}

export class ShimHost {
  readonly engine: TaskEngine;
  readonly sockets: ShimSockets;
  readonly keeper: KeeperLink | undefined;
  private readonly publishers: EventPublishers;

  constructor(private readonly deps: ShimHostDeps) {
    this.publishers = new EventPublishers(deps.logger);
    const dir = join(deps.runDir, 'shim');
    this.keeper = deps.keeper === false ? undefined : new KeeperLink(dir, deps.logger);
    this.engine = new TaskEngine(deps.pods, deps.vms, this.publishers, deps.logger, this.keeper);
    this.sockets = new ShimSockets(dir, this.engine, deps.logger, this.keeper);
  }

  /**
   * The shim binary's `start`: the socket of the task's pod, served from now on. A CRI container's
   * task gets its sandbox's socket; a sandbox (or a task without CRI annotations) gets its own.
   */
  async start(req: ShimStartRequest): Promise<{ address: string }> {
    const namespace = identifier('namespace', req.namespace);
    const id = identifier('id', req.id);
    const bundle = absolute('bundle', req.bundle);
    const owner = absolute('address', req.address);
    const events = absolute('ttrpcAddress', req.ttrpcAddress);
    const role = podRole(await readBundleSpec(bundle));
    const sandboxId = role.kind === 'sandbox' ? id : role.sandboxId;
    const ctx: ShimContext = { owner, events, namespace, sandboxId };
    if (role.kind === 'container' && !this.sockets.isServed(ctx) && !this.deps.pods.findSandbox(owner, namespace, sandboxId)) {
      throw new HypercoreError(ErrorCodes.containerNotFound, `sandbox ${sandboxId} of task ${id} is not running in this hypercored`);
    }
    const path = await this.sockets.serve(ctx);
    return { address: `unix://${path}` };
  }

  /** The shim binary's `delete`: containerd lost the task's connection and cleans up after it. */
  async delete(req: ShimDeleteRequest): Promise<TaskExit> {
    const namespace = identifier('namespace', req.namespace);
    const id = identifier('id', req.id);
    const owner = absolute('address', req.address);
    // The bundle tells whose pod the task was in; it may be gone already.
    const role = req.bundle ? await readBundleSpec(absolute('bundle', req.bundle)).then(podRole, () => ({ kind: 'sandbox' as const })) : { kind: 'sandbox' as const };
    const sandboxId = role.kind === 'sandbox' ? id : role.sandboxId;
    const exit = await this.engine.cleanup({ owner, namespace }, id);
    const ctx = { owner, namespace, sandboxId, events: '' };
    if (!this.engine.hasTasks(ctx)) await this.sockets.close(ctx);
    return exit;
  }

  /**
   * At daemon start: the sockets of the pods that still run are served again (the keeper still
   * holds containerd's connections to them and relays them here once they are), the keeper drops
   * the sockets of pods that are gone, and the processes that still run are followed again.
   */
  async restore(): Promise<void> {
    await mkdir(join(this.deps.runDir, 'shim'), { recursive: true, mode: 0o700 });
    // A keeper is started for pods only: a daemon that runs none leaves no extra process on the host.
    const pods = this.deps.pods.pods().filter((vm) => vm.state !== 'deleting');
    await (pods.length > 0 ? this.keeper?.start() : this.keeper?.reconnect());
    this.engine.holdRunning();
    // Before the sockets are served: a call relayed at once waits for its pod's agent.
    void this.engine.restore();
    for (const vm of pods) {
      const pod = vm.spec.pod!;
      await this.sockets.serve({ owner: pod.owner, events: pod.events, namespace: pod.namespace, sandboxId: pod.sandboxId });
    }
    this.keeper?.synced();
  }

  /** The `delete` calls the shim binary left while hypercored was down (see pending-deletes.ts). */
  async deletePending(socket: string): Promise<void> {
    const calls = takePendingDeletes(socket, (file, reason) => this.deps.logger.warn({ file, reason }, 'removed a file that is no pending shim delete'));
    for (const call of calls) {
      try {
        await this.delete(call);
        this.deps.logger.info({ namespace: call.namespace, id: call.id }, 'made a shim delete containerd asked for while hypercored was down');
      } catch (err) {
        this.deps.logger.warn({ namespace: call.namespace, id: call.id, err: asHypercoreError(err).message }, 'a pending shim delete failed');
      }
    }
  }

  async stop(): Promise<void> {
    this.engine.stop();
    this.keeper?.stop();
    await this.sockets.closeAll();
    this.publishers.closeAll();
  }
}
