/**
 * Metadata through the VM service with fake guests: what StartWorkload carries, `metadata set` on a
 * running guest (at once) and a stopped one (at its next start), and every refused set changing nothing.
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
import { FakeProvider, fakeBoot } from './testing/fake-provider.js';
import { VmService } from './vm-service.js';
import type { MetadataSpec, VmSpec } from './vm.js';

let dir: string;
let store: SqliteVmStore;
let provider: FakeProvider;
let agents: FakeAgentConnector;
let service: VmService;
let ids = 0;
/** Every log line of the service, as the daemon would write it (debug included). */
let logged: string[];
const logger = {
  info: (obj: object, msg?: string) => void logged.push(JSON.stringify([obj, msg])),
  warn: (obj: object, msg?: string) => void logged.push(JSON.stringify([obj, msg])),
  error: (obj: object, msg?: string) => void logged.push(JSON.stringify([obj, msg])),
  debug: (obj: object, msg?: string) => void logged.push(JSON.stringify([obj, msg])),
  child: (bindings: Record<string, unknown>) => (logged.push(JSON.stringify(bindings)), logger),
};

const metadata: MetadataSpec = {
  values: { region: 'eu-1' },
  secrets: { api_key: 's3cr3t' },
  sshAuthorizedKeys: ['ssh-ed25519 AAAA user@host'],
  files: [{ path: '/etc/app/app.conf', mode: '0640', owner: '1000', content: 'listen = 8080\n' }],
};

function imageSpec(name: string, extra: Partial<VmSpec> = {}): VmSpec {
  return { name, description: '', cores: 1, memoryMib: 128, kernelArgs: '', driveReadOnly: false, image: 'app:1', provider: 'qemu', hypervisor: { qemu: { accel: 'tcg' }, firecracker: {}, cloudHypervisor: {} }, ...extra };
}

function isCode(code: string, message?: RegExp) {
  return (err: HypercoreError) => err.code === code && (message === undefined || message.test(err.message));
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-meta-'));
  store = new SqliteVmStore(join(dir, 'state.db'));
  provider = new FakeProvider();
  agents = new FakeAgentConnector();
  logged = [];
  service = new VmService({
    store,
    providers: { get: (n) => (n === 'qemu' ? provider : undefined), all: () => [provider] },
    files: new VmDirectories(join(dir, 'root'), join(dir, 'run')),
    clock: { now: () => new Date() },
    ids: { newVmId: () => `${String(++ids).padStart(4, '0')}${'d'.repeat(12)}` },
    logger,
    boot: fakeBoot,
    images: fakeImages,
    guest: fakeGuest,
    agents,
    workloadLog: new MemoryWorkloadLog(),
  });
});
afterEach(() => {
  service.detachAll();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

test('StartWorkload carries the values, secrets, files (numeric mode and owner) and SSH keys', async () => {
  await service.create(imageSpec('app', { metadata }));
  const start = agents.lastStart!;
  assert.deepEqual(start.metadata, { values: { region: 'eu-1' }, secrets: { api_key: 's3cr3t' } });
  assert.deepEqual(start.sshAuthorizedKeys, ['ssh-ed25519 AAAA user@host']);
  assert.deepEqual(start.files, [{ path: '/etc/app/app.conf', mode: 0o640, uid: 1000, gid: 1000, content: Buffer.from('listen = 8080\n') }]);
  agents.workloadRunning = false; // the next VM's guest has not started its workload yet
  await service.create(imageSpec('bare'));
  assert.equal(agents.lastStart!.metadata, undefined, 'no metadata, none sent');
});

test('set on a running VM reaches its guest at once and is stored; get reads it back', async () => {
  const vm = await service.create(imageSpec('app', { metadata }));
  const after = await service.setMetadata('app', { role: 'web', token: 't0k' }, false);
  assert.deepEqual(after, { values: { region: 'eu-1', role: 'web', token: 't0k' }, secrets: { api_key: 's3cr3t' } });
  assert.deepEqual(agents.metadataSets, [after]);
  assert.deepEqual(service.getMetadata(vm.id), after);
  assert.deepEqual(store.get(vm.id)!.spec.metadata!.files, metadata.files, 'files and keys stay as they were');
});

test('--secret makes keys secrets; a secret set without it stays a secret', async () => {
  await service.create(imageSpec('app', { metadata }));
  assert.deepEqual(await service.setMetadata('app', { region: 'eu-2' }, true), { values: {}, secrets: { api_key: 's3cr3t', region: 'eu-2' } });
  assert.deepEqual(await service.setMetadata('app', { api_key: 'n3w' }, false), { values: {}, secrets: { api_key: 'n3w', region: 'eu-2' } });
});

test('set on a VM created without a start is stored; its first start hands the guest the values', async () => {
  await service.create(imageSpec('app', { metadata }), { start: false });
  await service.setMetadata('app', { region: 'us-1' }, false);
  assert.equal(agents.metadataSets.length, 0, 'no guest yet');
  await service.start('app');
  assert.deepEqual(agents.lastStart!.metadata, { values: { region: 'us-1' }, secrets: { api_key: 's3cr3t' } });
});

test('set on a stopped VM is stored only; its next start hands the guest the new values', async () => {
  const vm = await service.create(imageSpec('app', { metadata }));
  await service.stop(vm.id, { timeoutMs: 100, force: true });
  agents.workloadRunning = false; // the guest is gone with its workload
  await service.setMetadata('app', { region: 'us-1' }, false);
  assert.equal(agents.metadataSets.length, 0, 'no guest to tell');
  await service.start('app');
  assert.deepEqual(agents.lastStart!.metadata, { values: { region: 'us-1' }, secrets: { api_key: 's3cr3t' } });
});

test('no log line shows a secret or a file content: create, set, stop, start, a refused set, rm', async () => {
  const vm = await service.create(imageSpec('app', { metadata }));
  await service.setMetadata('app', { token: 'tok-SECRET-2' }, true);
  await service.stop(vm.id, { timeoutMs: 100, force: false });
  await service.start(vm.id);
  agents.refuseMetadata = true;
  await assert.rejects(service.setMetadata('app', { token: 'tok-SECRET-3' }, true));
  await service.delete(vm.id, { force: true });
  assert.ok(logged.length > 5, 'the service does log');
  for (const line of logged) for (const secret of ['s3cr3t', 'tok-SECRET', 'listen = 8080']) assert.ok(!line.includes(secret), line);
});

test('a VM without metadata gets some by set', async () => {
  await service.create(imageSpec('bare'));
  assert.deepEqual(service.getMetadata('bare'), { values: {}, secrets: {} });
  await service.setMetadata('bare', { a: 'b' }, false);
  assert.deepEqual(store.list()[0]!.spec.metadata, { values: { a: 'b' }, secrets: {}, sshAuthorizedKeys: [], files: [] });
});

test('refused sets change nothing: bad key, nothing to set, over 64 KiB, a guest that refuses, a paused VM', async () => {
  const vm = await service.create(imageSpec('app', { metadata }));
  const before = JSON.stringify(store.get(vm.id)!.spec);
  await assert.rejects(service.setMetadata('app', { 'bad key': 'x' }, false), isCode(ErrorCodes.invalidArgument, /metadata key "bad key": must be 1-128 characters/));
  await assert.rejects(service.setMetadata('app', { __proto__x: 'x' }, false), isCode(ErrorCodes.invalidArgument));
  await assert.rejects(service.setMetadata('app', {}, false), isCode(ErrorCodes.invalidArgument, /nothing to set/));
  const huge = 'v'.repeat(64 * 1024);
  await assert.rejects(service.setMetadata('app', { big: huge }, true), isCode(ErrorCodes.invalidArgument, /would hold \d+ bytes .*at most 65536/));
  agents.refuseMetadata = true;
  await assert.rejects(service.setMetadata('app', { region: 'x' }, false), isCode(ErrorCodes.agentUnavailable, /refused/));
  agents.refuseMetadata = false;
  await service.pause('app');
  await assert.rejects(service.setMetadata('app', { region: 'x' }, false), isCode(ErrorCodes.vmStateConflict, /is paused; resume it first/));
  assert.equal(JSON.stringify(store.get(vm.id)!.spec), before);
  assert.equal(agents.metadataSets.length, 0);
});

test('a drive VM has no metadata: get and set say why', async () => {
  await service.create({ ...imageSpec('disk'), image: undefined, drive: '/dev/null' });
  const why = /VM disk runs no Hypercore agent .*metadata needs a VM created from an image/;
  assert.throws(() => service.getMetadata('disk'), isCode(ErrorCodes.invalidArgument, why));
  await assert.rejects(service.setMetadata('disk', { a: 'b' }, false), isCode(ErrorCodes.invalidArgument, why));
  assert.equal(store.list()[0]!.spec.metadata, undefined);
});
