/**
 * Lifecycle edge cases of agent VMs: a stop always ends in a consistent state, whatever the agent
 * does, and a restart finishes what a dead daemon left half-done.
 */
import { afterEach, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteVmStore } from '../store/sqlite-vm-store.js';
import { VmDirectories } from '../store/vm-directories.js';
import { ErrorCodes, type HypercoreError } from './errors.js';
import { FakeAgentConnector, fakeGuest, fakeImages, MemoryWorkloadLog } from './testing/fake-agent.js';
import { within } from './testing/within.js';
import { FakeProvider, fakeBoot } from './testing/fake-provider.js';
import { VmService } from './vm-service.js';
import type { VmSpec } from './vm.js';

let dir: string;
let store: SqliteVmStore;
let provider: FakeProvider;
let agents: FakeAgentConnector;
let ids = 0;
const silent = { info() {}, warn() {}, error() {}, debug() {}, child() { return silent; } };

function makeService(agentBootTimeoutMs = 30_000): VmService {
  return new VmService({
    store,
    providers: { get: (n) => (n === 'qemu' ? provider : undefined), all: () => [provider] },
    files: new VmDirectories(join(dir, 'root'), join(dir, 'run')),
    clock: { now: () => new Date() },
    ids: { newVmId: () => `${String(++ids).padStart(4, '0')}${'e'.repeat(12)}` },
    logger: silent,
    boot: fakeBoot,
    images: fakeImages,
    guest: fakeGuest,
    agents,
    workloadLog: new MemoryWorkloadLog(),
    agentBootTimeoutMs,
  });
}

function imageSpec(name: string): VmSpec {
  return { name, description: '', cores: 1, memoryMib: 128, kernelArgs: '', driveReadOnly: false, image: 'app:1', provider: 'qemu', hypervisor: { qemu: { accel: 'tcg' }, firecracker: {}, cloudHypervisor: {} } };
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-life-'));
  store = new SqliteVmStore(join(dir, 'state.db'));
  provider = new FakeProvider();
  agents = new FakeAgentConnector();
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

test('an agent VM boots its workload and runs', async () => {
  const service = makeService();
  const vm = await service.create(imageSpec('app'));
  assert.equal(vm.state, 'running');
  assert.equal(agents.workloadStarts, 1);
});

test('the record keeps the last start step by step: the plan, then the agent and the workload', async () => {
  const service = makeService();
  const vm = await service.create(imageSpec('traced'));
  const trace = service.get(vm.id).lastStart;
  assert.ok(trace, 'create records its trace');
  assert.deepEqual(trace.steps.map((s) => s.step), ['record', 'directories', 'network', 'image-disk', 'launch', 'announce', 'agent', 'workload']);
  assert.ok(trace.steps.every((s) => typeof s.ms === 'number' && s.ms >= 0));
  assert.equal(trace.totalMs, Math.round(trace.steps.reduce((sum, s) => sum + s.ms, 0) * 10) / 10);
  assert.equal(trace.at, vm.createdAt);
  assert.deepEqual(store.get(vm.id)?.lastStart, trace, 'stored with the record');

  await service.stop(vm.id, { timeoutMs: 1000, force: true });
  const started = await service.start(vm.id);
  const again = service.get(vm.id).lastStart!;
  assert.deepEqual(again.steps.map((s) => s.step), ['directories', 'network', 'launch', 'announce', 'agent', 'workload'], 'a start replaces it with its own steps');
  assert.ok(again.at > trace.at && again.at <= started.updatedAt);
});

test('a detached create records its plan at once and adds the agent and workload steps when the boot is over', async () => {
  const service = makeService();
  const vm = await service.create(imageSpec('detached'), { detach: true });
  assert.deepEqual(service.get(vm.id).lastStart?.steps.map((s) => s.step), ['record', 'directories', 'network', 'image-disk', 'launch', 'announce']);
  await service.settled();
  assert.deepEqual(service.get(vm.id).lastStart?.steps.map((s) => s.step), ['record', 'directories', 'network', 'image-disk', 'launch', 'announce', 'agent', 'workload']);
  assert.equal(service.get(vm.id).state, 'running');
});

test('stop of a VM whose agent never answered ends at once in stopped, not after the boot timeout', async () => {
  agents.mode = 'silent';
  const service = makeService();
  const vm = await service.create(imageSpec('mute'), { detach: true });
  assert.equal(vm.state, 'starting');
  const stopped = await within(3000, service.stop(vm.id, { timeoutMs: 100, force: false }));
  assert.equal(stopped.state, 'stopped');
  assert.equal(provider.alive.has(vm.id), false);
  await service.settled();
  assert.equal(store.get(vm.id)?.state, 'stopped', 'the aborted boot does not mark the VM failed afterwards');
});

test('a create waiting for a silent agent is cut short by a stop, and the VM ends stopped', async () => {
  agents.mode = 'silent';
  const service = makeService();
  const creating = service.create(imageSpec('cut'));
  await new Promise((r) => setTimeout(r, 50));
  const id = store.list()[0]!.id;
  const stopped = await within(3000, service.stop(id, { timeoutMs: 100, force: true }));
  await assert.rejects(creating, (err: HypercoreError) => err.code === ErrorCodes.vmStateConflict && /stopped or removed while its workload was booting/.test(err.message));
  assert.equal(stopped.state, 'stopped');
});

test('stop of a running agent VM whose agent is not connected still ends in stopped (no stuck "stopping")', async () => {
  const first = makeService();
  const vm = await first.create(imageSpec('lost'));
  first.detachAll(); // the daemon goes away; the guest runs on
  agents.mode = 'silent'; // and its agent does not answer the new daemon
  const second = makeService();
  await second.reconcile();
  assert.equal(store.get(vm.id)?.state, 'running');
  const stopped = await within(3000, second.stop(vm.id, { timeoutMs: 100, force: false }));
  assert.equal(stopped.state, 'stopped');
  assert.equal(provider.alive.has(vm.id), false);
});

test('a VM left in "stopping" (an earlier stop died half-way) can be stopped, with or without force', async () => {
  const service = makeService();
  for (const force of [false, true]) {
    const vm = await service.create(imageSpec(`half-${force}`));
    store.update({ ...store.get(vm.id)!, state: 'stopping' });
    const stopped = await within(3000, service.stop(vm.id, { timeoutMs: 100, force }));
    assert.equal(stopped.state, 'stopped');
  }
});

test('a boot whose agent never answers fails the VM and kills its VMM', async () => {
  agents.mode = 'silent';
  const service = makeService(200);
  const vm = await service.create(imageSpec('late'), { detach: true });
  await service.settled();
  assert.equal(store.get(vm.id)?.state, 'failed');
  assert.match(store.get(vm.id)?.error?.message ?? '', /did not answer/);
  assert.equal(provider.alive.has(vm.id), false);
});

test('after a restart, a starting VM gets its workload started, unless the guest already runs it', async () => {
  for (const guestRunsIt of [false, true]) {
    const first = makeService();
    const vm = await first.create(imageSpec(`restarted-${guestRunsIt}`));
    first.detachAll();
    // The daemon died in the boot: the record still says starting.
    store.update({ ...store.get(vm.id)!, state: 'starting' });
    agents.workloadRunning = guestRunsIt;
    agents.workloadStarts = 0;
    const second = makeService();
    await second.reconcile();
    await second.settled();
    assert.equal(store.get(vm.id)?.state, 'running');
    assert.equal(agents.workloadStarts, guestRunsIt ? 0 : 1, guestRunsIt ? 'not started twice' : 'started once');
    second.detachAll();
  }
});

test('StartWorkload is sent along with Hello, not one round trip after its answer', async () => {
  const service = makeService();
  agents.helloDelayMs = 300;
  await service.create(imageSpec('quick'));
  assert.deepEqual(agents.calls, ['hello', 'startWorkload', 'hello answered']);
  assert.equal(agents.workloadStarts, 1);
});

test('a workload the agent cannot start fails the VM with the agent\'s message and kills its VMM', async () => {
  const service = makeService();
  agents.startFailure = 'crun could not start the workload (exit 1): no such file';
  await assert.rejects(service.create(imageSpec('broken')), /crun could not start the workload/);
  const vm = store.list().find((v) => v.name === 'broken');
  assert.equal(vm?.state, 'failed');
  assert.equal(provider.alive.has(vm!.id), false);
});

test('pause and resume: a paused VM takes no exec, says why, and runs again after resume', async () => {
  const service = makeService();
  const vm = await service.create(imageSpec('frozen'));
  assert.equal((await service.pause(vm.id)).state, 'paused');
  assert.ok(provider.paused.has(vm.id));
  await assert.rejects(service.exec(vm.id, { args: ['true'] }), (err: HypercoreError) => err.code === ErrorCodes.vmStateConflict && /is paused; resume it first/.test(err.message));
  assert.equal((await service.pause(vm.id)).state, 'paused', 'pausing a paused VM is a no-op');
  assert.equal((await service.resume(vm.id)).state, 'running');
  assert.equal(provider.paused.has(vm.id), false);
  await assert.rejects(service.resume('nope'), (err: HypercoreError) => err.code === ErrorCodes.vmNotFound);
});

test('only a running VM can be paused, and only by a provider that can', async () => {
  const service = makeService();
  const vm = await service.create(imageSpec('stiff'));
  await service.stop(vm.id, { timeoutMs: 10, force: true });
  await assert.rejects(service.pause(vm.id), (err: HypercoreError) => err.code === ErrorCodes.vmStateConflict && /is stopped; only a running VM/.test(err.message));
  await service.start(vm.id);
  (provider.capabilities as { pause: boolean }).pause = false;
  await assert.rejects(service.pause(vm.id), (err: HypercoreError) => err.code === ErrorCodes.vmStateConflict && /cannot pause/.test(err.message));
});

test('a graceful stop of a paused VM resumes it first; a forced one just kills it', async () => {
  const service = makeService();
  const a = await service.create(imageSpec('p-graceful'));
  await service.pause(a.id);
  assert.equal((await service.stop(a.id, { timeoutMs: 100, force: false })).state, 'stopped');
  assert.ok(provider.calls.indexOf(`resume ${a.id}`) < provider.calls.indexOf(`shutdown ${a.id}`));
  const b = await service.create(imageSpec('p-forced'));
  await service.pause(b.id);
  assert.equal((await service.stop(b.id, { timeoutMs: 100, force: true })).state, 'stopped');
  assert.ok(!provider.calls.includes(`resume ${b.id}`));
});

test('after a restart the record follows the VMM: paused while the daemon was down becomes paused; resume reconnects the agent', async () => {
  const first = makeService();
  const vm = await first.create(imageSpec('slept'));
  first.detachAll();
  provider.paused.add(vm.id);
  const second = makeService();
  await second.reconcile();
  await second.settled();
  assert.equal(store.get(vm.id)?.state, 'paused');
  const sessions = agents.sessions.length;
  await second.resume(vm.id);
  await second.settled();
  assert.equal(agents.sessions.length, sessions + 1, 'the agent was reconnected');
  await second.exec(vm.id, { args: ['true'] });
});
