import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ProcessEvent, ProcessIo } from '../core/agent.js';
import { EventHub } from '../core/event-hub.js';
import { ContainerNotFoundError } from '../core/errors.js';
import type { PodContainer, PodExec, ProcessExit, ProcessStdio } from '../core/pod.js';
import type { Logger } from '../core/ports.js';
import type { PodService } from '../core/sandboxes.js';
import type { Vm, VmState } from '../core/vm.js';
import type { VmService } from '../core/vm-service.js';
import type { EventPublishers } from './events.js';
import { TaskEngine, type ShimContext } from './tasks.js';

const NO_STDIO: ProcessStdio = { stdin: '', stdout: '', stderr: '', terminal: false };
const ctx: ShimContext = { owner: '/run/containerd/containerd.sock', events: '/run/containerd/containerd.sock.ttrpc', namespace: 'k8s.io', sandboxId: 'sb' };

const silent: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, child: () => silent } as unknown as Logger;

/** The pod service's records as the task engine sees them (one pod VM), with the real recordExit rules. */
class FakePods {
  readonly containers_ = new Map<string, PodContainer>();
  destroyed: string[] = [];
  ioOpened: string[] = [];
  /** The exit each followed process's Io reports. */
  ioExit = 0;

  constructor(readonly vm: Vm) {}

  pods(): Vm[] {
    return this.destroyed.includes(this.vm.id) ? [] : [this.vm];
  }
  findSandbox(owner: string, namespace: string, sandboxId: string): Vm | undefined {
    const pod = this.vm.spec.pod!;
    return this.pods().find(() => pod.owner === owner && pod.namespace === namespace && pod.sandboxId === sandboxId);
  }
  containers(vmId: string): PodContainer[] {
    return vmId === this.vm.id ? [...this.containers_.values()] : [];
  }
  exec(_vmId: string, id: string, execId: string): PodExec {
    const e = this.containers_.get(id)?.execs.find((x) => x.id === execId);
    if (!e) throw new ContainerNotFoundError(`exec ${execId}`);
    return e;
  }
  async recordExit(_vmId: string, id: string, execId: string | undefined, status: number): Promise<ProcessExit> {
    const c = this.containers_.get(id);
    if (!c) throw new ContainerNotFoundError(`container ${id}`);
    const exit = { status, at: new Date().toISOString() };
    if (execId) this.containers_.set(id, { ...c, execs: c.execs.map((e) => (e.id === execId ? { ...e, state: 'stopped', exit } : e)) });
    else this.containers_.set(id, { ...c, state: 'stopped', exit, execs: c.execs.map((e) => (e.state === 'stopped' ? e : { ...e, state: 'stopped', exit })) });
    return exit;
  }
  removeExec(_vmId: string, id: string, execId: string): void {
    const c = this.containers_.get(id)!;
    this.containers_.set(id, { ...c, execs: c.execs.filter((e) => e.id !== execId) });
  }
  async removeContainer(_vmId: string, id: string): Promise<void> {
    this.containers_.delete(id);
  }
  async destroySandbox(vmId: string): Promise<void> {
    this.containers_.clear();
    this.destroyed.push(vmId);
  }
  saveOutputOffset(): void {}
  io(_vmId: string, id: string, execId: string | undefined): ProcessIo {
    this.ioOpened.push(execId ? `${id}/${execId}` : id);
    const exitCode = this.ioExit;
    return {
      async *[Symbol.asyncIterator](): AsyncIterator<ProcessEvent> {
        yield { kind: 'exit', status: { exitCode } };
      },
      write: async () => {},
      closeStdin: async () => {},
      close: () => {},
    };
  }
}

function podVm(state: VmState): Vm {
  return { id: 'vm1', name: 'pod-sb', state, spec: { pod: { sandboxId: 'sb', namespace: ctx.namespace, owner: ctx.owner, events: ctx.events, slots: 8 } } } as unknown as Vm;
}

function container(id: string, state: PodContainer['state'], pid: number, execs: PodExec[] = []): PodContainer {
  return { id, vmId: 'vm1', bundle: `/run/bundles/${id}`, slot: 1, disk: {} as PodContainer['disk'], imageKey: 'k', stdio: NO_STDIO, state, pid, createdAt: new Date().toISOString(), execs };
}

/** A restarted daemon's task engine over `pods`; records the events it publishes. */
function engineOver(pods: FakePods, vmsOverride: Partial<Record<'agentSession' | 'stop', (...args: never[]) => unknown>> = {}, agentWaitMs?: number) {
  const events = new EventHub();
  const published: { name: string; body: Record<string, unknown> }[] = [];
  const publishers = { for: () => ({ publish: (name: string, body: Record<string, unknown>) => published.push({ name, body }) }) } as unknown as EventPublishers;
  const vms = { events, agentSession: () => ({}), ...vmsOverride } as unknown as VmService;
  const engine = new TaskEngine(pods as unknown as PodService, vms, publishers, silent, undefined, agentWaitMs);
  return { engine, events, published, exits: () => published.filter((e) => e.name === 'exit').map((e) => `${String(e.body.containerId)}/${String(e.body.id)}:${String(e.body.exitStatus)}`) };
}

test('after a restart, the tasks of a pod VM that stopped meanwhile exit with 255, once each, in order, and can be deleted', async () => {
  const vm = podVm('running');
  const pods = new FakePods(vm);
  pods.containers_.set('sb', container('sb', 'running', 1));
  pods.containers_.set('app', container('app', 'running', 7, [{ id: 'sh', stdio: NO_STDIO, process: '{}', state: 'running', pid: 9 }]));
  const { engine, events, published, exits } = engineOver(pods);
  const abort = new AbortController();
  // A Wait containerd sent before the restart (the keeper sends it again) and one on the exec.
  const waitApp = engine.wait(ctx, 'app', '', abort.signal);
  const waitExec = engine.wait(ctx, 'app', 'sh', abort.signal);

  // Reconcile finds the VMM gone and records the VM stopped; then the shim restores.
  vm.state = 'stopped';
  events.publish({ type: 'state-changed', vmId: vm.id, name: vm.name, state: 'stopped', previousState: 'running', at: new Date().toISOString() });
  await engine.restore();

  assert.equal((await waitApp).status, 255);
  assert.equal((await waitExec).status, 255);
  assert.equal((await engine.wait(ctx, 'sb', '', abort.signal)).status, 255);
  assert.deepEqual(exits(), ['app/sh:255', 'app/app:255', 'sb/sb:255']);
  const appExit = published.find((e) => e.name === 'exit' && e.body.id === 'app')!.body;
  assert.equal(appExit.pid, 7);
  assert.ok(appExit.exitedAt);

  // Another restore (or a late state event) reports nothing more.
  await engine.restore();
  assert.equal(exits().length, 3);

  assert.equal((await engine.delete(ctx, 'app', 'sh')).exitStatus, 255);
  assert.equal((await engine.delete(ctx, 'app', '')).exitStatus, 255);
  assert.equal((await engine.delete(ctx, 'sb', '')).exitStatus, 255);
  assert.deepEqual(pods.destroyed, ['vm1']);
  assert.equal(engine.hasTasks(ctx), false);
  assert.deepEqual(published.filter((e) => e.name === 'delete').map((e) => e.body.containerId), ['app', 'sb']);
  engine.stop();
});

test('after a restart, a task created but never started in a failed pod VM exits too', async () => {
  const pods = new FakePods(podVm('failed'));
  pods.containers_.set('sb', container('sb', 'running', 1));
  pods.containers_.set('app', container('app', 'created', 0));
  const { engine, exits } = engineOver(pods);
  await engine.restore();
  assert.deepEqual(exits(), ['app/app:255', 'sb/sb:255']);
  engine.stop();
});

test('after a restart, the processes of a paused pod VM are followed once it runs again', async () => {
  const vm = podVm('paused');
  const pods = new FakePods(vm);
  pods.ioExit = 3;
  pods.containers_.set('sb', container('sb', 'running', 1));
  const { engine, events, exits } = engineOver(pods);
  await engine.restore();
  assert.deepEqual(pods.ioOpened, [], 'a paused VM has no agent to follow its processes through');
  assert.deepEqual(exits(), []);

  vm.state = 'running';
  events.publish({ type: 'state-changed', vmId: vm.id, name: vm.name, state: 'running', previousState: 'paused', at: new Date().toISOString() });
  const exit = await engine.wait(ctx, 'sb', '', new AbortController().signal);
  assert.equal(exit.status, 3);
  assert.deepEqual(pods.ioOpened, ['sb']);
  assert.deepEqual(exits(), ['sb/sb:3']);
  engine.stop();
});

test('after a restart, a running pod VM whose agent never answers again is stopped, and its tasks exit with 255', async () => {
  const vm = podVm('running');
  const pods = new FakePods(vm);
  pods.containers_.set('sb', container('sb', 'running', 1));
  pods.containers_.set('c1', container('c1', 'running', 2));
  const stopped: unknown[] = [];
  let events: EventHub | undefined;
  const harness = engineOver(pods, {
    agentSession: () => {
      throw new Error('the agent of VM vm1 is not connected');
    },
    stop: async (...args: never[]) => {
      stopped.push(args);
      vm.state = 'stopped';
      events!.publish({ type: 'state-changed', vmId: vm.id, name: vm.name, state: 'stopped', previousState: 'running', at: new Date().toISOString() });
      return vm;
    },
  }, 300);
  events = harness.events;
  await harness.engine.restore();
  assert.deepEqual(stopped, [['vm1', { force: true, timeoutMs: 0 }]]);
  const exit = await harness.engine.wait(ctx, 'sb', '', new AbortController().signal);
  assert.equal(exit.status, 255);
  assert.deepEqual(harness.exits(), ['c1/c1:255', 'sb/sb:255'], 'every task reported, the sandbox last');
  harness.engine.stop();
});
