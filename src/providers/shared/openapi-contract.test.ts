import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { OpenApiContract } from './openapi-contract.js';

const firecrackerSpec = fileURLToPath(new URL('../firecracker/api/firecracker.yaml', import.meta.url));

test('the Firecracker document: valid bodies pass, with the path parameters', async () => {
  const api = await OpenApiContract.load(firecrackerSpec);
  const drive = api.check('PUT', '/drives/rootfs', { drive_id: 'rootfs', path_on_host: '/x', is_root_device: false, is_read_only: true });
  assert.deepEqual(drive, { ok: true, operation: { method: 'PUT', template: '/drives/{drive_id}', pathParams: { drive_id: 'rootfs' } } });
  assert.equal(api.check('PUT', '/actions', { action_type: 'InstanceStart' }).ok, true);
  assert.equal(api.check('GET', '/version', undefined).ok, true);
  assert.equal(api.check('PATCH', '/vm', { state: 'Paused' }).ok, true);
});

test('the Firecracker document: unknown fields, wrong types, bad enums and missing required fields fail', async () => {
  const api = await OpenApiContract.load(firecrackerSpec);
  const typo = api.check('PUT', '/drives/rootfs', { drive_id: 'rootfs', path_on_host: '/x', is_root_device: false, read_only: true });
  assert.equal(typo.ok, false);
  assert.match(!typo.ok ? typo.problem : '', /read_only/);
  const type = api.check('PUT', '/machine-config', { vcpu_count: '2', mem_size_mib: 256 });
  assert.equal(type.ok, false);
  assert.equal(api.check('PUT', '/actions', { action_type: 'Reboot' }).ok, false);
  const missing = api.check('PUT', '/boot-source', { boot_args: 'console=ttyS0' });
  assert.match(!missing.ok ? missing.problem : '', /kernel_image_path/);
  assert.equal(api.check('PUT', '/boot-source', undefined).ok, false);
  assert.equal(api.check('PATCH', '/vm', { state: 'Stopped' }).ok, false);
});

test('the Firecracker document: unknown paths are 404 and unknown methods 405', async () => {
  const api = await OpenApiContract.load(firecrackerSpec);
  const path = api.check('PUT', '/drive/rootfs', {});
  assert.equal(!path.ok && path.status, 404);
  const method = api.check('DELETE', '/drives/rootfs', undefined);
  assert.equal(!method.ok && method.status, 405);
  assert.equal(!method.ok && method.status, 405);
  const body = api.check('GET', '/version', { x: 1 });
  assert.equal(!body.ok && body.status, 400);
});

test('an OpenAPI 3 document: server base path, requestBody and components refs', () => {
  const api = OpenApiContract.fromDocument({
    openapi: '3.0.1',
    info: { title: 'T', version: '1' },
    servers: [{ url: 'http://localhost/api/v1' }],
    paths: {
      '/vm.create': { put: { requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/VmConfig' } } } }, responses: {} } },
      '/vm.boot': { put: { responses: {} } },
    },
    components: {
      schemas: {
        VmConfig: { type: 'object', required: ['payload'], properties: { payload: { $ref: '#/components/schemas/Payload' }, memory: { type: 'object', properties: { size: { type: 'integer', format: 'int64' } } } } },
        Payload: { type: 'object', properties: { kernel: { type: 'string' }, cmdline: { type: 'string' } } },
      },
    },
  });
  assert.equal(api.check('PUT', '/api/v1/vm.create', { payload: { kernel: '/k' }, memory: { size: 1 << 30 } }).ok, true);
  assert.equal(api.check('PUT', '/api/v1/vm.create', { payload: { kernel: '/k', kernal: 1 } }).ok, false);
  assert.equal(api.check('PUT', '/api/v1/vm.create', { memory: { size: 1.5 } }).ok, false);
  assert.equal(api.check('PUT', '/api/v1/vm.boot', undefined).ok, true);
  assert.equal(api.check('PUT', '/vm.boot', undefined).ok, false);
});
