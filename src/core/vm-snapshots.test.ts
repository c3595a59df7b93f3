/** Snapshots, restores, clones and create-without-boot in the core, on the fake provider and agent. */
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { MAX_CLONES, VmService } from './vm-service.js';
import { ErrorCodes, HypercoreError, ProviderFailedError } from './errors.js';
import { machineId } from './identity.js';
import { FakeProvider, fakeBoot } from './testing/fake-provider.js';
import { FakeAgentConnector, fakeImages, MemoryWorkloadLog } from './testing/fake-agent.js';
import { within } from './testing/within.js';
import type { VmSpec } from './vm.js';
import { migrate } from '../store/migrations.js';
import { SqliteVmStore } from '../store/sqlite-vm-store.js';
import { SqliteSnapshotStore } from '../store/sqlite-snapshot-store.js';
import { SnapshotDirectories } from '../store/snapshot-directories.js';
import { VmDirectories } from '../store/vm-directories.js';

let dir: string;
let db: Database.Database;
let provider: FakeProvider;
let agents: FakeAgentConnector;
let service: VmService;
let systemImage: string;
let ids = 0;

const silent = { info() {}, warn() {}, error() {}, debug() {}, child() { return silent; } };

function makeService(): VmService {
  return new VmService({
    store: new SqliteVmStore(db),
    providers: { get: (n) => (n === 'qemu' ? provider : undefined), all: () => [provider] },
    files: new VmDirectories(join(dir, 'root'), join(dir, 'run')),
    clock: { now: () => new Date() },
    ids: { newVmId: () => `${String(++ids).padStart(4, '0')}${'e'.repeat(12)}` },
    logger: silent,
    boot: fakeBoot,
    images: fakeImages,
    guest: { rootDisk: async () => systemImage },
    agents,
    workloadLog: new MemoryWorkloadLog(),
    snapshots: { store: new SqliteSnapshotStore(db), files: new SnapshotDirectories(join(dir, 'root')) },
  });
}

function imageSpec(name: string): VmSpec {
  return { name, description: '', cores: 1, memoryMib: 128, kernelArgs: '', driveReadOnly: false, image: 'docker.io/library/app:1', provider: 'qemu', hypervisor: { qemu: { accel: 'tcg' }, firecracker: {}, cloudHypervisor: {} } };
}

function snapshotDirs(): string[] {
  const d = join(dir, 'root', 'snapshots');
  return existsSync(d) ? readdirSync(d) : [];
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-snap-'));
  db = new Database(join(dir, 'state.db'));
  migrate(db);
  systemImage = join(dir, 'system.ext4');
  writeFileSync(systemImage, 'system image');
  provider = new FakeProvider().enableSnapshots();
  agents = new FakeAgentConnector();
  service = makeService();
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

test('a snapshot pauses the VM around the save, keeps the boot disk and leaves the VM running', async () => {
  const vm = await service.create(imageSpec('web'));
  const snap = await service.snapshot('web', { name: 'web-1' });
  assert.deepEqual(provider.calls.filter((c) => /^(pause|save|resume)/.test(c)), [`pause ${vm.id}`, `save ${vm.id} (paused)`, `resume ${vm.id}`]);
  assert.equal(service.get('web').state, 'running');
  assert.equal(snap.vmm.vmmVersion, 'fake 1.0');
  assert.ok(snap.pauseMs >= 0);
  // The guest system image is kept by a hard link: a rebuild that removes it does not break the snapshot.
  assert.equal(statSync(snap.launch.rootDisk!.path).ino, statSync(systemImage).ino);
  assert.deepEqual(service.listSnapshots().map((s) => s.name), ['web-1']);
  assert.deepEqual([...service.snapshotImageDigests()], [snap.imageDigest]);
});

test('--leave-paused keeps the VM paused', async () => {
  await service.create(imageSpec('web'));
  await service.snapshot('web', { leavePaused: true });
  assert.equal(service.get('web').state, 'paused');
});

test('a provider that cannot snapshot: a clear error, the VM untouched, nothing left', async () => {
  provider.capabilities.snapshot = false;
  await service.create(imageSpec('web'));
  await assert.rejects(service.snapshot('web'), (err: unknown) => err instanceof HypercoreError && err.code === ErrorCodes.snapshotUnsupported && /web runs on qemu, which cannot take snapshots/.test(err.message));
  assert.equal(service.get('web').state, 'running');
  assert.ok(!provider.calls.some((c) => c.startsWith('pause')));
  assert.deepEqual(snapshotDirs(), []);
  assert.deepEqual(service.listSnapshots(), []);
});

test('a pod VM refuses snapshot and clone, naming its sandbox; it is not paused and nothing is left', async () => {
  const { image: _image, ...withoutImage } = imageSpec('pod1');
  await service.create({ ...withoutImage, pod: { sandboxId: 'sb1', namespace: 'k8s.io', owner: '/run/containerd/containerd.sock', events: '/run/containerd/containerd.sock.ttrpc', slots: 2 } });
  const refused = (err: unknown) => err instanceof HypercoreError && err.code === ErrorCodes.snapshotUnsupported && /pod1 is a pod VM of containerd sandbox k8s\.io\/sb1; pod VMs cannot be snapshotted/.test(err.message);
  await assert.rejects(service.snapshot('pod1'), refused);
  await assert.rejects(service.clone('pod1', { count: 1 }), refused);
  assert.equal(service.get('pod1').state, 'running');
  assert.ok(!provider.calls.some((c) => c.startsWith('pause')));
  assert.deepEqual(service.list().map((vm) => vm.name), ['pod1']);
  assert.deepEqual(snapshotDirs(), []);
  assert.deepEqual(service.listSnapshots(), []);
});

test('a save that fails: the VM runs again, and no directory or record is left', async () => {
  await service.create(imageSpec('web'));
  provider.failSave = new ProviderFailedError('the VMM refused');
  await assert.rejects(service.snapshot('web'), /the VMM refused/);
  assert.equal(service.get('web').state, 'running');
  assert.equal(provider.paused.size, 0);
  assert.deepEqual(snapshotDirs(), []);
  assert.deepEqual(service.listSnapshots(), []);
});

test('a restored VM: its own name, machine id and disks; its agent is told the new identity', async () => {
  const source = await service.create(imageSpec('web'));
  await service.snapshot('web', { name: 's' });
  const before = Date.now();
  const vm = await service.restore('s', { name: 'web-b' });
  assert.equal(vm.state, 'running');
  assert.equal(vm.restoredFrom, service.getSnapshot('s').id);
  assert.equal(provider.restores.length, 1);
  assert.equal(provider.restores[0]!.rootDisk!.path, service.getSnapshot('s').launch.rootDisk!.path);
  const [identity] = agents.restores;
  assert.equal(identity!.hostname, 'web-b');
  assert.equal(identity!.machineId, machineId(vm.id));
  assert.notEqual(identity!.machineId, machineId(source.id));
  assert.equal(identity!.entropy.length, 64);
  assert.ok(identity!.unixTimeMs >= before && identity!.unixTimeMs <= Date.now());
});

test('clone: N VMs with different entropy, and the clone snapshot is removed afterwards', async () => {
  await service.create(imageSpec('web'));
  const clones = await service.clone('web', { count: 2 });
  assert.deepEqual(clones.map((c) => c.name), ['web-clone-1', 'web-clone-2']);
  assert.deepEqual(clones.map((c) => c.state), ['running', 'running']);
  assert.notDeepEqual(agents.restores[0]!.entropy, agents.restores[1]!.entropy);
  assert.deepEqual(service.listSnapshots(), []);
  assert.deepEqual(snapshotDirs(), []);
});

test('clone counts of 0 and 1000 are refused naming the count; nothing is made', async () => {
  await service.create(imageSpec('web'));
  for (const count of [0, 1000, 1.5]) {
    await assert.rejects(service.clone('web', { count }), (err: unknown) => err instanceof HypercoreError && err.code === ErrorCodes.invalidArgument && err.message === `count = ${count}: must be a whole number from 1 to ${MAX_CLONES}`);
  }
  assert.deepEqual(service.list().map((v) => v.name), ['web']);
  assert.deepEqual(snapshotDirs(), []);
});

test('a snapshot another VMM version saved is refused, and the restore leaves nothing', async () => {
  await service.create(imageSpec('web'));
  await service.snapshot('web', { name: 's' });
  provider.version = 'fake 2.0';
  await assert.rejects(service.restore('s'), (err: unknown) => err instanceof HypercoreError && err.code === ErrorCodes.snapshotIncompatible);
  assert.deepEqual(service.list().map((v) => v.name), ['web']);
  assert.deepEqual(readdirSync(join(dir, 'root', 'vms')).length, 1);
  await assert.rejects(service.restore('nope'), (err: unknown) => err instanceof HypercoreError && err.code === ErrorCodes.snapshotNotFound);
});

test('removing the source VM keeps its snapshot restorable', async () => {
  await service.create(imageSpec('web'));
  await service.snapshot('web', { name: 's' });
  await service.delete('web', { force: true });
  rmSync(systemImage); // a rebuilt guest system image removed the old one
  const vm = await service.restore('s');
  assert.equal(vm.name, 'web-restored-1');
  assert.equal(vm.state, 'running');
  await service.deleteSnapshot('s');
  assert.deepEqual(snapshotDirs(), []);
  assert.equal(service.get(vm.id).state, 'running');
});

test('create with start false defines the VM without booting it; start boots it', async () => {
  const vm = await service.create(imageSpec('later'), { start: false });
  assert.equal(vm.state, 'created');
  assert.equal(vm.pid, undefined);
  assert.ok(!provider.calls.some((c) => c.startsWith('launch')));
  assert.equal((await service.stop('later', { timeoutMs: 0, force: false })).state, 'created');
  const started = await service.start('later');
  assert.equal(started.state, 'running');
  assert.equal(agents.workloadStarts, 1);
});

test("a restored guest's clock is set to the host's time when its agent answers, not when the restore began", async () => {
  await service.create(imageSpec('web'));
  await service.snapshot('web', { name: 's' });
  agents.connectDelayMs = 1500;
  await service.restore('s');
  const connected = agents.connectedAt.at(-1)!;
  assert.ok(agents.restores[0]!.unixTimeMs >= connected, `time sent ${agents.restores[0]!.unixTimeMs} is not older than the agent's answer ${connected}`);
});

test("a restored guest's agent channel is opened before the guest resumes, and its identity goes through that one channel", async () => {
  await service.create(imageSpec('web'));
  await service.snapshot('web', { name: 's' });
  const connects = agents.connects;
  agents.connectDelayMs = 200;
  await service.restore('s');
  assert.equal(agents.connects - connects, 1, 'one channel');
  assert.equal(agents.openedAt.length, 1);
  assert.ok(agents.openedAt[0]! < provider.resumedAt.at(-1)!, 'opened while the VMM waited to resume the guest');
  assert.equal(agents.restores.length, 1);
});

test('a restore whose early channel waits for a silent agent is cut short by a stop', async () => {
  await service.create(imageSpec('web'));
  await service.snapshot('web', { name: 's' });
  agents.mode = 'silent';
  const restoring = service.restore('s', { name: 'mute' });
  await new Promise((r) => setTimeout(r, 50));
  const stopped = await within(3000, service.stop('mute', { timeoutMs: 100, force: true }));
  // Not after the restored agent's 30 s timeout.
  await assert.rejects(within(3000, restoring), (err: HypercoreError) => err.code === ErrorCodes.vmStateConflict);
  assert.equal(stopped.state, 'stopped');
});

test("a restored guest's first call is Restored: no Hello, whose answers are known and cost the guest a call", async () => {
  await service.create(imageSpec('web'));
  await service.snapshot('web', { name: 's' });
  agents.calls.length = 0;
  const vm = await service.restore('s');
  assert.deepEqual(agents.calls, ['restored']);
  assert.equal(vm.state, 'running');
});

const metadata = { values: { region: 'eu-1' }, secrets: { api_key: 's3cr3t' }, sshAuthorizedKeys: [], files: [] };

test('metadata: a clone keeps what `metadata set` changed, and its guest is sent its own record', async () => {
  await service.create({ ...imageSpec('web'), metadata });
  const set = await service.setMetadata('web', { role: 'web', token: 't0k' }, true);
  agents.metadataSets.length = 0;
  const clones = await service.clone('web', { count: 2 });
  for (const clone of clones) assert.deepEqual(service.getMetadata(clone.id), set);
  assert.equal(agents.restores.length, 2);
  assert.deepEqual(agents.metadataSets, [set, set], 'each clone is sent its metadata');
});

test('metadata: a restored guest is sent its record, which is its own from then on', async () => {
  await service.create({ ...imageSpec('web'), metadata });
  await service.snapshot('web', { name: 's' });
  agents.metadataSets.length = 0;
  const vm = await service.restore('s', { name: 'web-b' });
  assert.deepEqual(agents.metadataSets, [{ values: { region: 'eu-1' }, secrets: { api_key: 's3cr3t' } }]);
  await service.setMetadata(vm.id, { region: 'eu-2' }, false);
  assert.equal(service.getMetadata('web').values['region'], 'eu-1');
  assert.equal(service.getMetadata('web-b').values['region'], 'eu-2');
});
