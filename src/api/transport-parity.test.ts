/**
 * Both transports over one multiplexed unix socket show the same VMs with the same field names and
 * values; the socket is private; GET /openapi.json documents the same messages.
 */
import { afterEach, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { Vm } from '../core/vm.js';
import { HYPERCORE_VERSION, type VersionReport } from '../core/version.js';
import { publicVm } from './redaction.js';
import { TEST_GUEST_KERNEL, TEST_HOST_CPUS, TestServer } from './testing-server.js';

let server: TestServer;

beforeEach(async () => {
  server = await TestServer.start();
});
afterEach(async () => {
  await server.close();
});

test('a VM created over HTTP reads back identically through gRPC GetVm and HTTP GET', async () => {
  const created = await server.httpJson<Vm>('POST', '/v1/vms', { spec: server.spec('web') });
  assert.equal(created.status, 201);
  const vm = created.json;
  assert.equal(vm.id, '0001aaaaaaaaaaaa');
  assert.equal(vm.name, 'web');
  assert.equal(vm.state, 'running');
  assert.equal(vm.provider, 'qemu');
  assert.equal(vm.pid, 1000);
  assert.deepEqual(vm.spec, {
    name: 'web',
    description: 'the web VM',
    cores: 1,
    memoryMib: 256,
    diskSizeMib: 4096,
    kernelArgs: 'console=ttyS0',
    drive: server.drive,
    driveReadOnly: true,
    provider: 'qemu',
    hypervisor: { qemu: { accel: 'tcg' }, firecracker: {}, cloudHypervisor: {} },
  });
  assert.deepEqual(Object.keys(vm).sort(), ['createdAt', 'disks', 'id', 'lastStart', 'launch', 'name', 'pid', 'provider', 'providerReason', 'spec', 'startedAt', 'state', 'updatedAt']);
  assert.deepEqual(vm.lastStart?.steps.map((s) => s.step), ['record', 'directories', 'network', 'image-disk', 'launch', 'announce']);

  const overHttp = await server.httpJson<Vm>('GET', `/v1/vms/${vm.id}`);
  assert.equal(overHttp.status, 200);
  const overGrpc = await server.grpc<Vm>('GetVm', { id: vm.id });
  assert.deepEqual(overHttp.json, vm);
  assert.deepEqual(overGrpc, vm, 'gRPC uses the same (lowerCamelCase) field names and values as HTTP');
  assert.deepEqual(server.service.get(vm.id), vm, 'both transports show what the service stored');
});

test('GET /v1/vms is the JSON of ListVms and follows every change to a listed VM', async () => {
  const list = async (): Promise<string> => {
    const r = await server.http('GET', '/v1/vms');
    assert.equal(r.status, 200);
    assert.equal(r.contentType, 'application/json; charset=utf-8');
    return r.text;
  };
  const states = async () => (JSON.parse(await list()) as { vms: Vm[] }).vms.map((v) => `${v.name}:${v.state}`);
  const { status, json: a } = await server.httpJson<Vm>('POST', '/v1/vms', { spec: server.spec('alpha') });
  assert.equal(status, 201);
  const first = await list();
  assert.equal(first, JSON.stringify({ vms: server.service.list().map(publicVm) }));
  assert.equal(await list(), first);
  await server.grpc('StopVm', { id: a.id, force: true });
  assert.deepEqual(await states(), ['alpha:stopped']);
  await server.httpJson('POST', '/v1/vms', { spec: server.spec('beta'), start: false });
  assert.deepEqual(await states(), ['alpha:stopped', 'beta:created']);
  await server.http('POST', `/v1/vms/${a.id}/start`);
  assert.deepEqual(JSON.parse(await list()), await server.grpc<unknown>('ListVms', {}));
  await server.http('DELETE', `/v1/vms/${a.id}?force=true`);
  assert.deepEqual(await states(), ['beta:created']);
});

test('GetVm resolves a name and a unique id prefix the same way on both transports', async () => {
  const { json: vm } = await server.httpJson<Vm>('POST', '/v1/vms', { spec: server.spec('db-1') });
  for (const ref of ['db-1', '0001aa']) {
    assert.equal((await server.httpJson<Vm>('GET', `/v1/vms/${ref}`)).json.id, vm.id);
    assert.equal((await server.grpc<Vm>('GetVm', { id: ref })).id, vm.id);
  }
});

test('a VM created over gRPC is listed identically by gRPC ListVms and HTTP GET /v1/vms', async () => {
  const a = await server.grpc<Vm>('CreateVm', { spec: server.spec('vm-a') });
  const { json: b } = await server.httpJson<Vm>('POST', '/v1/vms', { spec: server.spec('vm-b', { cores: TEST_HOST_CPUS }) });
  assert.equal(a.state, 'running');
  assert.equal(b.spec.cores, TEST_HOST_CPUS);

  const overHttp = await server.httpJson<{ vms: Vm[] }>('GET', '/v1/vms');
  const overGrpc = await server.grpc<{ vms: Vm[] }>('ListVms', {});
  assert.equal(overHttp.status, 200);
  assert.deepEqual(overHttp.json.vms.map((v) => v.name), ['vm-a', 'vm-b']);
  assert.deepEqual(overGrpc, overHttp.json);
  assert.deepEqual(overHttp.json.vms[0], a);
  assert.deepEqual(overHttp.json.vms[1], b);
});

test('stop and start return the same VM shape on both transports', async () => {
  const { json: vm } = await server.httpJson<Vm>('POST', '/v1/vms', { spec: server.spec('s') });
  const stopped = await server.grpc<Vm>('StopVm', { id: vm.id, timeoutSeconds: 1 });
  assert.equal(stopped.state, 'stopped');
  assert.equal(stopped.pid, undefined);
  assert.deepEqual((await server.httpJson<Vm>('GET', `/v1/vms/${vm.id}`)).json, stopped);
  const started = await server.httpJson<Vm>('POST', `/v1/vms/${vm.id}/start`);
  assert.equal(started.status, 200);
  assert.equal(started.json.state, 'running');
  assert.equal(started.json.pid, 1001);
  assert.deepEqual(await server.grpc<Vm>('GetVm', { id: vm.id }), started.json);
});

test('delete over gRPC removes the VM from both transports', async () => {
  const { json: vm } = await server.httpJson<Vm>('POST', '/v1/vms', { spec: server.spec('gone') });
  assert.deepEqual(await server.grpc<unknown>('DeleteVm', { id: vm.id, force: true }), {});
  assert.deepEqual((await server.httpJson<{ vms: Vm[] }>('GET', '/v1/vms')).json, { vms: [] });
  assert.equal((await server.http('GET', `/v1/vms/${vm.id}`)).status, 404);
  assert.deepEqual(server.provider.alive.size, 0, 'the VMM was killed');
});

test('spec validation: the drive must exist on the daemon host', async () => {
  const missing = join(server.dir, 'no-such.ext4');
  const res = await server.httpJson<{ error: { code: string; details: { path: string; message: string; value: unknown }[] } }>('POST', '/v1/vms', {
    spec: server.spec('x', { drive: missing }),
  });
  assert.equal(res.status, 400);
  assert.equal(res.json.error.code, 'HC_INVALID_ARGUMENT');
  assert.deepEqual(res.json.error.details, [{ path: 'spec.drive', message: "file not found on the daemon's host", value: missing }]);
  const relative = await server.httpJson<{ error: { details: { path: string; message: string }[] } }>('POST', '/v1/vms', { spec: server.spec('x', { drive: 'rootfs.ext4' }) });
  assert.deepEqual(relative.json.error.details.map((d) => [d.path, d.message]), [['spec.drive', "must be an absolute path on the daemon's host"]]);
  assert.deepEqual(server.service.list(), [], 'nothing was created');
});

test('spec validation: cores may not exceed the host CPUs and must be at least 1', async () => {
  for (const cores of [TEST_HOST_CPUS + 1, 0, 1.5]) {
    const res = await server.httpJson<{ error: { details: { path: string; value: unknown }[] } }>('POST', '/v1/vms', { spec: server.spec('vm-c', { cores }) });
    assert.equal(res.status, 400, `cores = ${cores}`);
    assert.deepEqual(res.json.error.details.map((d) => [d.path, d.value]), [['spec.cores', cores]]);
  }
  const err = await server.grpcError('CreateVm', { spec: server.spec('vm-c', { cores: TEST_HOST_CPUS + 1 }) });
  assert.match(err.details, /^invalid VM spec: spec\.cores = 3: must be an integer from 1 to 2 \(this host's CPUs\)$/);
  assert.equal(server.provider.calls.length, 0, 'no VMM was launched');
});

test('defaults are filled in the same way for a minimal spec on both transports', async () => {
  const { json: vm } = await server.httpJson<Vm>('POST', '/v1/vms', { spec: { name: 'min', drive: server.drive } });
  assert.deepEqual(vm.spec, {
    name: 'min',
    description: '',
    cores: 1,
    memoryMib: 256,
    diskSizeMib: 4096,
    kernelArgs: '',
    drive: server.drive,
    driveReadOnly: false,
    provider: 'auto',
    hypervisor: { qemu: { accel: 'auto' }, firecracker: {}, cloudHypervisor: {} },
  });
  // protobufjs puts explicitly set zero values on the wire, so gRPC shows the filled-in defaults too.
  assert.deepEqual(await server.grpc<Vm>('GetVm', { id: 'min' }), vm);
});

test('Version reports the daemon, each hypervisor and the guest kernel, the same on both transports', async () => {
  const overHttp = await server.httpJson<VersionReport>('GET', '/v1/version');
  assert.equal(overHttp.status, 200);
  assert.deepEqual(overHttp.json, {
    version: HYPERCORE_VERSION,
    nodeVersion: process.version,
    providers: [{ name: 'qemu', usable: true, version: 'fake 1.0', detail: 'fake' }],
    guestKernel: TEST_GUEST_KERNEL,
  });
  assert.deepEqual(await server.grpc<VersionReport>('Version', {}), overHttp.json);
});

test('the public socket is mode 0600 (owner only)', () => {
  assert.equal(statSync(server.socket).mode & 0o777, 0o600);
  assert.ok(statSync(server.socket).isSocket());
});

test('GET /openapi.json is an OpenAPI 3 document of the VM API built from vm.proto', async () => {
  const res = await server.http('GET', '/openapi.json');
  assert.equal(res.status, 200);
  assert.match(res.contentType, /^application\/json/);
  const doc = JSON.parse(res.text) as {
    openapi: string;
    paths: Record<string, Record<string, { operationId: string }>>;
    components: { schemas: Record<string, { type: string; properties: Record<string, { $ref?: string; type?: string; items?: unknown }> }> };
  };
  assert.match(doc.openapi, /^3\.\d+\.\d+$/);
  const ops = Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([m, op]) => `${m.toUpperCase()} ${path} ${op.operationId}`));
  for (const op of ['GET /v1/vms ListVms', 'POST /v1/vms CreateVm', 'GET /v1/vms/{id} GetVm', 'DELETE /v1/vms/{id} DeleteVm', 'POST /v1/vms/{id}/start StartVm', 'POST /v1/vms/{id}/stop StopVm', 'GET /v1/vms/{id}/logs StreamLogs', 'GET /v1/events WatchEvents', 'GET /v1/version Version']) {
    assert.ok(ops.includes(op), `missing ${op}`);
  }
  const { Vm: vm, VmSpec: spec, VmEvent: event } = doc.components.schemas;
  assert.ok(vm && spec && event);
  for (const key of ['id', 'name', 'state', 'provider', 'pid', 'createdAt', 'updatedAt', 'startedAt', 'error', 'disks', 'imageDigest']) assert.ok(key in vm.properties, `Vm.${key}`);
  assert.deepEqual(vm.properties['spec'], { $ref: '#/components/schemas/VmSpecAnswer' });
  assert.deepEqual(Object.keys(spec.properties), ['name', 'description', 'cores', 'memoryMib', 'kernel', 'initrd', 'kernelArgs', 'drive', 'driveReadOnly', 'image', 'hostInterface', 'provider', 'hypervisor', 'workload', 'network', 'diskSizeMib', 'metadata', 'pod']);
  assert.equal(spec.properties['memoryMib']?.type, 'integer');
  assert.deepEqual(Object.keys(event.properties), ['type', 'vmId', 'name', 'state', 'previousState', 'at', 'error']);
  // Every $ref points at a schema that exists.
  const refs = [...res.text.matchAll(/"\$ref":"#\/components\/schemas\/([A-Za-z]+)"/g)].map((m) => m[1]!);
  assert.ok(refs.length > 10);
  for (const r of refs) assert.ok(r in doc.components.schemas, `dangling $ref ${r}`);
});

test('start false defines a VM without booting it on both transports; StartVm boots it', async () => {
  const { status, json: overHttp } = await server.httpJson<Vm>('POST', '/v1/vms', { spec: server.spec('later-http'), start: false });
  assert.equal(status, 201);
  const overGrpc = await server.grpc<Vm>('CreateVm', { spec: server.spec('later-grpc'), start: false });
  for (const vm of [overHttp, overGrpc]) {
    assert.equal(vm.state, 'created');
    assert.equal(vm.pid, undefined);
  }
  assert.equal((await server.grpc<Vm>('StartVm', { id: 'later-grpc' })).state, 'running');
  assert.equal((await server.httpJson<Vm>('POST', '/v1/vms/later-http/start')).json.state, 'running');
});
