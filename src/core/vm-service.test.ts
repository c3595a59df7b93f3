import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VmService } from './vm-service.js';
import { ErrorCodes, HypercoreError, ProviderFailedError } from './errors.js';
import { FakeProvider, fakeBoot } from './testing/fake-provider.js';
import { FakeAgentConnector, fakeGuest, fakeImages, MemoryWorkloadLog } from './testing/fake-agent.js';
import type { VmEvent, VmSpec } from './vm.js';
import { SqliteVmStore } from '../store/sqlite-vm-store.js';
import { VmDirectories } from '../store/vm-directories.js';

let dir: string;
let store: SqliteVmStore;
let provider: FakeProvider;
let service: VmService;
let events: VmEvent[];
let ids = 0;

const silent = { info() {}, warn() {}, error() {}, debug() {}, child() { return silent; } };

function makeService(): VmService {
  const s = new VmService({
    store,
    providers: { get: (n) => (n === provider.name ? provider : undefined), all: () => [provider] },
    files: new VmDirectories(join(dir, 'root'), join(dir, 'run')),
    clock: { now: () => new Date() },
    ids: { newVmId: () => `${String(++ids).padStart(4, '0')}${'f'.repeat(12)}` },
    logger: silent,
    boot: fakeBoot,
  });
  s.events.subscribe((e) => events.push(e));
  return s;
}

function spec(name: string): VmSpec {
  return { name, description: '', cores: 1, memoryMib: 128, kernelArgs: '', drive: '/dev/null', driveReadOnly: false, provider: 'auto', hypervisor: { qemu: { accel: 'tcg' }, firecracker: {}, cloudHypervisor: {} } };
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-svc-'));
  store = new SqliteVmStore(join(dir, 'state.db'));
  provider = new FakeProvider();
  events = [];
  service = makeService();
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

test('create records a running VM with its pid and publishes created then running', async () => {
  const vm = await service.create(spec('a'));
  assert.equal(vm.state, 'running');
  assert.equal(vm.provider, 'qemu');
  assert.equal(typeof vm.pid, 'number');
  assert.deepEqual(store.get(vm.id)?.state, 'running');
  assert.deepEqual(events.map((e) => `${e.type}:${e.state}`), ['created:creating', 'state-changed:running']);
});

test('a failed launch rolls back: error returned, no record, no directories, VMM killed', async () => {
  provider.failLaunch = new ProviderFailedError('qemu exited: bad drive');
  await assert.rejects(service.create(spec('b')), (err: HypercoreError) => err.code === ErrorCodes.providerFailed && /bad drive/.test(err.message));
  assert.equal(store.list().length, 0);
  assert.equal(provider.alive.size, 0, 'the half-started VMM was killed');
  const vmId = provider.calls[0]!.split(' ')[1]!;
  assert.ok(provider.calls.includes(`kill ${vmId}`) && provider.calls.includes(`cleanup ${vmId}`));
  assert.equal(existsSync(join(dir, 'root', 'vms', vmId)), false);
  assert.equal(existsSync(join(dir, 'run', 'vms', vmId)), false);
  assert.deepEqual(events.map((e) => e.type), ['created', 'deleted']);
});

test('an unavailable provider fails before anything is recorded', async () => {
  provider.unavailable = new Error('qemu-system-x86_64: not found');
  await assert.rejects(service.create(spec('c')), (err: HypercoreError) => err.code === ErrorCodes.providerUnavailable && /not found/.test(err.message));
  assert.equal(store.list().length, 0);
  assert.equal(provider.calls.length, 0);
});

test('a taken name is a conflict and changes nothing', async () => {
  const first = await service.create(spec('dup'));
  await assert.rejects(service.create(spec('dup')), (err: HypercoreError) => err.code === ErrorCodes.vmNameTaken && err.message.includes(first.id));
  assert.equal(store.list().length, 1);
  assert.equal(provider.alive.size, 1);
});

test('VMs are found by id, unique id prefix and name; an ambiguous prefix is an error', async () => {
  const a = await service.create(spec('alpha'));
  await service.create(spec('beta'));
  assert.equal(service.get(a.id).name, 'alpha');
  assert.equal(service.get('alpha').id, a.id);
  assert.equal(service.get(a.id.slice(0, 4)).id, a.id);
  assert.throws(() => service.get('00'), (err: HypercoreError) => err.code === ErrorCodes.vmAmbiguous);
  assert.throws(() => service.get('nope'), (err: HypercoreError) => err.code === ErrorCodes.vmNotFound);
});

test('stop powers off gracefully, stop again is a no-op, start boots it again', async () => {
  const vm = await service.create(spec('s'));
  const stopped = await service.stop(vm.id, { timeoutMs: 100, force: false });
  assert.equal(stopped.state, 'stopped');
  assert.equal(stopped.pid, undefined);
  assert.ok(provider.calls.includes(`shutdown ${vm.id}`));
  assert.ok(!provider.calls.includes(`kill ${vm.id}`), 'no kill when the guest powered off in time');
  assert.equal((await service.stop(vm.id, { timeoutMs: 100, force: false })).state, 'stopped');
  const started = await service.start(vm.id);
  assert.equal(started.state, 'running');
  assert.ok(provider.alive.has(vm.id));
});

test('stop kills the VMM when the guest ignores the power button', async () => {
  provider.shutdownWorks = false;
  const vm = await service.create(spec('k'));
  await service.stop(vm.id, { timeoutMs: 10, force: false });
  assert.ok(provider.calls.includes(`kill ${vm.id}`));
  assert.equal(provider.alive.has(vm.id), false);
});

test('rm of a running VM needs force; rm -f removes VMM, files and record', async () => {
  const vm = await service.create(spec('r'));
  await assert.rejects(service.delete(vm.id, { force: false }), (err: HypercoreError) => err.code === ErrorCodes.vmStateConflict);
  assert.equal(store.get(vm.id)?.state, 'running');
  await service.delete(vm.id, { force: true });
  assert.equal(store.get(vm.id), undefined);
  assert.equal(provider.alive.size, 0);
  assert.equal(existsSync(join(dir, 'root', 'vms', vm.id)), false);
});

test('a VM defined without booting has no directories until it starts; its rm kills and releases nothing', async () => {
  const dirsOf = (id: string) => [join(dir, 'root', 'vms', id), join(dir, 'run', 'vms', id)].filter((d) => existsSync(d));
  const later = await service.create(spec('later'), { start: false });
  assert.equal(later.state, 'created');
  assert.deepEqual(dirsOf(later.id), []);
  assert.deepEqual(events.map((e) => `${e.type}:${e.state}`), ['created:creating', 'state-changed:created']);
  await service.delete('later', { force: false });
  assert.equal(store.get(later.id), undefined);
  assert.deepEqual([...provider.calls], [], 'no VMM was looked for, killed or cleaned up');
  assert.deepEqual(events.map((e) => `${e.type}:${e.state}`).slice(2), ['state-changed:deleting', 'deleted:deleting']);

  const booted = await service.create(spec('booted'), { start: false });
  assert.equal((await service.start(booted.id)).state, 'running');
  assert.equal(dirsOf(booted.id).length, 2, 'start made both directories');
  await service.delete(booted.id, { force: true });
  assert.ok(provider.calls.includes(`kill ${booted.id}`) && provider.calls.includes(`cleanup ${booted.id}`));
  assert.deepEqual(dirsOf(booted.id), []);
});

test('start makes the run directory again when a host reboot emptied the run dir', async () => {
  const vm = await service.create(spec('reboot'));
  await service.stop(vm.id, { timeoutMs: 100, force: false });
  rmSync(join(dir, 'run'), { recursive: true, force: true });
  assert.equal((await service.start(vm.id)).state, 'running');
  assert.ok(existsSync(join(dir, 'run', 'vms', vm.id)));
});

test('stop and rm -f racing on the same VM leave it removed and nothing running', async () => {
  const vm = await service.create(spec('race'));
  const results = await Promise.allSettled([service.stop(vm.id, { timeoutMs: 50, force: false }), service.delete(vm.id, { force: true })]);
  assert.equal(results[1].status, 'fulfilled');
  if (results[0].status === 'rejected') assert.equal((results[0].reason as HypercoreError).code, ErrorCodes.vmNotFound);
  assert.equal(store.list().length, 0);
  assert.equal(provider.alive.size, 0);
});

test('a VMM that exits by itself marks the VM stopped or failed with the reason', async () => {
  const a = await service.create(spec('poweroff'));
  const b = await service.create(spec('crash'));
  provider.exit(a.id, { outcome: 'stopped', reason: 'the guest powered off' });
  provider.exit(b.id, { outcome: 'failed', reason: 'killed from outside' });
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(store.get(a.id)?.state, 'stopped');
  assert.equal(store.get(a.id)?.error, undefined);
  assert.equal(store.get(b.id)?.state, 'failed');
  assert.match(store.get(b.id)?.error?.message ?? '', /killed from outside/);
});

test('reconcile adopts live VMMs, marks dead ones stopped, resumes interrupted creates and finishes interrupted stops', async () => {
  const live = await service.create(spec('live'));
  const dead = await service.create(spec('dead'));
  const now = new Date().toISOString();
  store.insert({ id: 'half000000000000', name: 'half', state: 'creating', provider: 'qemu', createdAt: now, updatedAt: now, spec: spec('half') });
  const midStop = await service.create(spec('midstop'));
  store.update({ ...store.get(midStop.id)!, state: 'stopping' });
  provider.alive.delete(dead.id);
  service.detachAll();

  const restarted = makeService();
  await restarted.reconcile();
  assert.equal(store.get(live.id)?.state, 'running');
  assert.equal(store.get(dead.id)?.state, 'stopped');
  assert.equal(store.get(dead.id)?.error?.code, 'HC_VMM_EXITED');
  await restarted.settled();
  assert.equal(store.get('half000000000000')?.state, 'running', 'the interrupted create resumed and booted the VM');
  assert.ok(existsSync(join(dir, 'root', 'vms', 'half000000000000')), 'its directories were made');
  assert.equal(store.get(midStop.id)?.state, 'stopped', 'a stop interrupted by the crash is finished');
  assert.equal(provider.alive.has(midStop.id), false);
});

test('a create without boot that the daemon died in is finished after the restart as a definition: the VM is created, not booted', async () => {
  const now = new Date().toISOString();
  store.insert({ id: 'def0000000000000', name: 'defined', state: 'creating', provider: 'qemu', createdAt: now, updatedAt: now, spec: spec('defined'), disks: [], defineOnly: true });
  service.detachAll();
  const restarted = makeService();
  await restarted.reconcile();
  await restarted.settled();
  const vm = store.get('def0000000000000');
  assert.equal(vm?.state, 'created', 'defined, as the interrupted create asked');
  assert.equal(vm?.defineOnly, undefined, 'the mark is gone with the create');
  assert.equal(provider.alive.has('def0000000000000'), false, 'no VMM was launched');
  assert.equal((await restarted.start('defined')).state, 'running', 'start boots it as usual');
});

test('a create resumed after a restart adopts the VMM the dead daemon launched instead of launching a second', async () => {
  const now = new Date().toISOString();
  const id = 'crash00000000000';
  store.insert({ id, name: 'crash', state: 'creating', provider: 'qemu', createdAt: now, updatedAt: now, spec: spec('crash') });
  provider.alive.add(id); // launched, but the daemon died before recording the pid
  provider.pids.set(id, 4242);
  const restarted = makeService();
  await restarted.reconcile();
  await restarted.settled();
  assert.equal(store.get(id)?.state, 'running');
  assert.equal(store.get(id)?.pid, 4242);
  assert.ok(!provider.calls.includes(`launch ${id}`), 'no second VMM');
});

test('a daemon crash in start after the VMM launched: reconcile finds the VMM by its pidfile and records its pid', async () => {
  const vm = await service.create(spec('restart'));
  await service.stop(vm.id, { timeoutMs: 10, force: true });
  // As `start` leaves it when the daemon dies right after the VMM daemonized.
  store.update({ ...store.get(vm.id)!, state: 'starting' });
  provider.alive.add(vm.id);
  provider.pids.set(vm.id, 777);
  service.detachAll();
  await makeService().reconcile();
  assert.equal(store.get(vm.id)?.state, 'running');
  assert.equal(store.get(vm.id)?.pid, 777);
});

test('a failed resumed create is rolled back completely', async () => {
  const now = new Date().toISOString();
  store.insert({ id: 'fail000000000000', name: 'fails', state: 'creating', provider: 'qemu', createdAt: now, updatedAt: now, spec: spec('fails') });
  provider.failLaunch = new ProviderFailedError('no such drive');
  const restarted = makeService();
  await restarted.reconcile();
  await restarted.settled();
  assert.equal(store.get('fail000000000000'), undefined);
  assert.equal(existsSync(join(dir, 'root', 'vms', 'fail000000000000')), false);
  assert.equal(provider.alive.size, 0);
});

/** A service choosing between two fake providers, with what image and pod VMs need. */
function twoProviders(fc: FakeProvider, qemu: FakeProvider, idFill: string): VmService {
  return new VmService({
    store,
    providers: { get: (n) => [fc, qemu].find((p) => p.name === n), all: () => [fc, qemu] },
    files: new VmDirectories(join(dir, 'root'), join(dir, 'run')),
    clock: { now: () => new Date() },
    ids: { newVmId: () => `${String(++ids).padStart(4, '0')}${idFill.repeat(12)}` },
    logger: silent,
    boot: fakeBoot,
    images: fakeImages,
    guest: fakeGuest,
    agents: new FakeAgentConnector(),
    workloadLog: new MemoryWorkloadLog(),
  });
}

test('provider "auto" takes the first usable provider in order and records why; doctor lists them all', async () => {
  const fc = new FakeProvider('firecracker');
  fc.unavailable = new Error('firecracker: not found');
  const qemu = new FakeProvider('qemu');
  const s = twoProviders(fc, qemu, 'c');
  const vm = await s.create(spec('auto'));
  assert.equal(vm.provider, 'qemu');
  assert.equal(vm.providerReason, 'auto: firecracker unusable (firecracker: not found); qemu picked (fake)');
  assert.equal(store.get(vm.id)?.providerReason, vm.providerReason);
  assert.deepEqual((await s.providerReports()).map((r) => [r.name, r.usable]), [['firecracker', false], ['qemu', true]]);
  qemu.unavailable = new Error('qemu: gone');
  await assert.rejects(s.create(spec('none')), (err: HypercoreError) => err.code === ErrorCodes.providerUnavailable && /firecracker unusable .*qemu unusable \(qemu: gone\)/.test(err.message));
});

test('provider "auto" passes over providers that cannot swap disks into a running VM for a pod VM, and says so', async () => {
  const s = twoProviders(new FakeProvider('firecracker'), new FakeProvider('qemu'), 'd');
  const before = store.list().length;
  const { drive: _drive, ...withoutDrive } = spec('pod-auto');
  const pod = { sandboxId: 'sb1', namespace: 'k8s.io', owner: '/run/containerd/containerd.sock', events: '/run/containerd/containerd.sock.ttrpc', slots: 2 };
  await assert.rejects(
    s.create({ ...withoutDrive, pod }),
    (err: HypercoreError) => err.code === ErrorCodes.providerUnavailable && /firecracker cannot run this VM \(no disk swap into a running VM, which pod VMs need\); qemu cannot run this VM/.test(err.message),
  );
  assert.equal(store.list().length, before, 'no VM record left');
});

test('a kernel-only VM (no drive, no image) boots with no root disk and no agent', async () => {
  const { drive: _drive, ...withoutDrive } = spec('bare');
  const vm = await service.create({ ...withoutDrive, kernel: '/boot/unikernel' });
  assert.equal(vm.state, 'running');
  const launch = provider.requests.at(-1)!;
  assert.equal(launch.rootDisk, undefined);
  assert.equal(launch.agent, false);
  assert.equal(launch.boot.kernel, '/boot/unikernel');
});

test('the serial console: a running VM names its socket; a provider without one, or a stopped VM, is refused by name', async () => {
  Object.assign(provider, { serialConsole: (paths: { runDir: string }) => join(paths.runDir, 'serial.sock') });
  const vm = await service.create(spec('tty'));
  assert.equal(service.serialConsole('tty'), join(service.paths(vm).runDir, 'serial.sock'));
  await service.stop('tty', { timeoutMs: 10, force: true });
  assert.throws(() => service.serialConsole('tty'), (err: unknown) => err instanceof HypercoreError && err.code === ErrorCodes.vmStateConflict && /tty is stopped/.test(err.message));

  provider = new FakeProvider('firecracker');
  service = makeService();
  await service.create(spec('fc'));
  assert.throws(() => service.serialConsole('fc'), (err: unknown) => err instanceof HypercoreError && err.code === ErrorCodes.vmStateConflict && /provider firecracker has no interactive serial console/.test(err.message));
});
