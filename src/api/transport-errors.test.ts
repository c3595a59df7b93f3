/**
 * The error mapping table, end to end: each failure gives the same code, message and details over
 * HTTP (status + JSON body) and gRPC (status + hc-error-code / hc-error-details metadata).
 */
import { after, afterEach, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import type { Vm } from '../core/vm.js';
import type { ErrorBody } from './error-status.js';
import { TestServer } from './testing-server.js';

let server: TestServer;
let running: Vm;
/** A prefix shared by exactly two VM ids (set by the ambiguous-prefix case). */
let sharedPrefix = '';

before(async () => {
  server = await TestServer.start();
});
after(async () => {
  await server.close();
});
beforeEach(async () => {
  running = await server.grpc<Vm>('CreateVm', { spec: server.spec('taken') });
});
afterEach(async () => {
  for (const vm of server.service.list()) await server.service.delete(vm.id, { force: true });
});

interface Case {
  what: string;
  http: () => { method: 'GET' | 'POST' | 'DELETE'; path: string; body?: unknown };
  grpc: () => { method: string; req: object };
  httpStatus: number;
  code: string;
  grpcStatus: status;
  detailPaths: string[];
}

const badSpec = () => ({ spec: server.spec('bad name!', { cores: 9, drive: join(server.dir, 'missing.ext4') }) });

const cases: Case[] = [
  {
    what: 'an unknown id on get',
    http: () => ({ method: 'GET', path: '/v1/vms/nope' }),
    grpc: () => ({ method: 'GetVm', req: { id: 'nope' } }),
    httpStatus: 404, code: 'HC_VM_NOT_FOUND', grpcStatus: status.NOT_FOUND, detailPaths: [],
  },
  {
    what: 'an unknown id on start',
    http: () => ({ method: 'POST', path: '/v1/vms/nope/start' }),
    grpc: () => ({ method: 'StartVm', req: { id: 'nope' } }),
    httpStatus: 404, code: 'HC_VM_NOT_FOUND', grpcStatus: status.NOT_FOUND, detailPaths: [],
  },
  {
    what: 'an unknown id on stop',
    http: () => ({ method: 'POST', path: '/v1/vms/nope/stop', body: { force: true } }),
    grpc: () => ({ method: 'StopVm', req: { id: 'nope', force: true } }),
    httpStatus: 404, code: 'HC_VM_NOT_FOUND', grpcStatus: status.NOT_FOUND, detailPaths: [],
  },
  {
    what: 'an unknown id on delete',
    http: () => ({ method: 'DELETE', path: '/v1/vms/nope?force=true' }),
    grpc: () => ({ method: 'DeleteVm', req: { id: 'nope', force: true } }),
    httpStatus: 404, code: 'HC_VM_NOT_FOUND', grpcStatus: status.NOT_FOUND, detailPaths: [],
  },
  {
    what: 'an invalid spec (every problem listed)',
    http: () => ({ method: 'POST', path: '/v1/vms', body: badSpec() }),
    grpc: () => ({ method: 'CreateVm', req: badSpec() }),
    httpStatus: 400, code: 'HC_INVALID_ARGUMENT', grpcStatus: status.INVALID_ARGUMENT, detailPaths: ['spec.name', 'spec.cores', 'spec.drive'],
  },
  {
    what: 'a missing spec',
    http: () => ({ method: 'POST', path: '/v1/vms', body: {} }),
    grpc: () => ({ method: 'CreateVm', req: {} }),
    httpStatus: 400, code: 'HC_INVALID_ARGUMENT', grpcStatus: status.INVALID_ARGUMENT, detailPaths: ['spec.name', 'spec'],
  },
  {
    what: 'a name that is taken',
    http: () => ({ method: 'POST', path: '/v1/vms', body: { spec: server.spec('taken') } }),
    grpc: () => ({ method: 'CreateVm', req: { spec: server.spec('taken') } }),
    httpStatus: 409, code: 'HC_VM_NAME_TAKEN', grpcStatus: status.ALREADY_EXISTS, detailPaths: [],
  },
  {
    what: 'removing a running VM without force',
    http: () => ({ method: 'DELETE', path: `/v1/vms/${running.id}` }),
    grpc: () => ({ method: 'DeleteVm', req: { id: running.id } }),
    httpStatus: 409, code: 'HC_VM_STATE_CONFLICT', grpcStatus: status.FAILED_PRECONDITION, detailPaths: [],
  },
  {
    what: 'a stop timeout out of range',
    http: () => ({ method: 'POST', path: `/v1/vms/${running.id}/stop`, body: { timeoutSeconds: 3601 } }),
    grpc: () => ({ method: 'StopVm', req: { id: running.id, timeoutSeconds: 3601 } }),
    httpStatus: 400, code: 'HC_INVALID_ARGUMENT', grpcStatus: status.INVALID_ARGUMENT, detailPaths: ['timeoutSeconds'],
  },
  {
    what: 'an id prefix matching two VMs',
    http: () => ({ method: 'GET', path: `/v1/vms/${sharedPrefix}` }),
    grpc: () => ({ method: 'GetVm', req: { id: sharedPrefix } }),
    httpStatus: 400, code: 'HC_VM_AMBIGUOUS', grpcStatus: status.INVALID_ARGUMENT, detailPaths: [],
  },
];

for (const c of cases) {
  test(`${c.what}: HTTP ${c.httpStatus} ${c.code}, gRPC ${status[c.grpcStatus]}, same message and details`, async () => {
    if (c.code === 'HC_VM_AMBIGUOUS') {
      const second = await server.grpc<Vm>('CreateVm', { spec: server.spec('second') });
      let n = 0;
      while (running.id[n] === second.id[n]) n++;
      sharedPrefix = running.id.slice(0, n);
      assert.ok(n >= 2, `ids ${running.id} and ${second.id} share a prefix`);
    }
    const h = c.http();
    const res = await server.http(h.method, h.path, h.body === undefined ? {} : { body: h.body });
    assert.equal(res.status, c.httpStatus);
    assert.match(res.contentType, /^application\/json/);
    const body = JSON.parse(res.text) as ErrorBody;
    assert.deepEqual(Object.keys(body), ['error']);
    assert.equal(body.error.code, c.code);
    assert.ok(body.error.message.length > 0);
    assert.deepEqual(body.error.details.map((d) => d.path), c.detailPaths);

    const g = c.grpc();
    const err = await server.grpcError(g.method, g.req);
    assert.equal(err.code, c.grpcStatus);
    assert.deepEqual(err.metadata.get('hc-error-code'), [c.code]);
    assert.equal(err.details, body.error.message, 'the same message on both transports');
    const details = err.metadata.get('hc-error-details');
    if (c.detailPaths.length === 0) assert.deepEqual(details, []);
    else assert.deepEqual(JSON.parse(String(details[0])), body.error.details, 'the same details on both transports');

    const vm = server.service.get('taken');
    assert.equal(vm.state, 'running', 'a refused request changes nothing');
    assert.equal(vm.pid, running.pid);
  });
}

test('the unknown-id message names the reference that was not found', async () => {
  const { json } = await server.httpJson<ErrorBody>('GET', '/v1/vms/ghost');
  assert.equal(json.error.message, 'no VM matches "ghost" (by id, id prefix or name)');
});

test('an invalid spec reports each offending value in its details', async () => {
  const { json } = await server.httpJson<ErrorBody>('POST', '/v1/vms', badSpec());
  assert.deepEqual(json.error.details.map((d) => [d.path, d.value]), [
    ['spec.name', 'bad name!'],
    ['spec.cores', 9],
    ['spec.drive', join(server.dir, 'missing.ext4')],
  ]);
  assert.deepEqual(server.service.list().map((v) => v.name), ['taken'], 'nothing was created');
});

test('a malformed JSON body is 400 HC_INVALID_ARGUMENT', async () => {
  const res = await server.http('POST', '/v1/vms', { rawBody: '{"spec": {' });
  assert.equal(res.status, 400);
  const body = JSON.parse(res.text) as ErrorBody;
  assert.equal(body.error.code, 'HC_INVALID_ARGUMENT');
  assert.deepEqual(body.error.details, []);
  assert.deepEqual(server.service.list().map((v) => v.name), ['taken']);
});

test('an empty body sent as JSON is 400 HC_INVALID_ARGUMENT', async () => {
  const res = await server.http('POST', `/v1/vms/${running.id}/stop`, { rawBody: '' });
  assert.equal(res.status, 400);
  assert.equal((JSON.parse(res.text) as ErrorBody).error.code, 'HC_INVALID_ARGUMENT');
  assert.equal(server.service.get(running.id).state, 'running');
});

test('an unknown route is 404 HC_NOT_FOUND pointing at /openapi.json', async () => {
  const res = await server.http('GET', '/v1/nothing-here');
  assert.equal(res.status, 404);
  assert.deepEqual(JSON.parse(res.text), { error: { code: 'HC_NOT_FOUND', message: 'no route GET /v1/nothing-here; see GET /openapi.json', details: [] } });
});

test('stop with timeoutSeconds -1 (or a fraction) is 400 and the VM keeps running', async () => {
  for (const timeoutSeconds of [-1, 1.5]) {
    const res = await server.httpJson<ErrorBody>('POST', `/v1/vms/${running.id}/stop`, { timeoutSeconds });
    assert.equal(res.status, 400);
    assert.equal(res.json.error.code, 'HC_INVALID_ARGUMENT');
    assert.deepEqual(res.json.error.details, [{ path: 'timeoutSeconds', message: 'an integer from 0 to 3600', value: timeoutSeconds }]);
  }
  assert.equal(server.service.get(running.id).state, 'running');
  assert.deepEqual(server.provider.calls.filter((c) => c.endsWith(running.id) && !c.startsWith('launch')), [], 'no shutdown or kill was attempted');
});

test('an unknown id on GET /v1/vms/{id}/logs is 404 before any stream starts', async () => {
  const res = await server.http('GET', '/v1/vms/nope/logs?follow=true');
  assert.equal(res.status, 404);
  assert.match(res.contentType, /^application\/json/);
  assert.equal((JSON.parse(res.text) as ErrorBody).error.code, 'HC_VM_NOT_FOUND');
});
