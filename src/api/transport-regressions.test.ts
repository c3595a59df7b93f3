/**
 * Regression tests for transport bugs found by review: synthetic oneof markers, streams that ended
 * without a status, an events stream without a response head, a listener leak while following logs.
 */
import { afterEach, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners, setMaxListeners } from 'node:events';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import type { Vm } from '../core/vm.js';
import { FakeAgentConnector } from '../core/testing/fake-agent.js';
import { readConsoleLog } from '../providers/console-log.js';
import { TestServer, until } from './testing-server.js';

let server: TestServer;

beforeEach(async () => {
  server = await TestServer.start();
});
afterEach(async () => {
  await server.close();
});

const timeout = (ms: number) => new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref());

test('gRPC responses carry exactly the HTTP fields, without synthetic oneof markers like _pid', async () => {
  const { json: vm } = await server.httpJson<Vm>('POST', '/v1/vms', { spec: server.spec('m') });
  const raw = await server.grpcRaw<Record<string, unknown>>('GetVm', { id: vm.id });
  assert.deepEqual(Object.keys(raw).filter((k) => k.startsWith('_')), []);
  assert.deepEqual(raw, vm);
});

test('a pod VM reads back with its spec.pod through gRPC exactly as over HTTP (the proto carries it), and a create that sets it is refused', async () => {
  const { drive: _drive, driveReadOnly: _ro, ...imageSpec } = server.spec('pod-vm');
  const pod = {
    sandboxId: 'sb1', namespace: 'k8s.io', owner: '/run/containerd/containerd.sock', events: '/run/containerd/containerd.sock.ttrpc', slots: 8, netns: '/var/run/netns/cni-1',
    network: { tap: 'hctap0', device: 'eth0', mac: '02:00:00:00:00:01', ip: '10.22.0.5', prefixLength: 16, gateway: '10.22.0.1', dns: ['10.22.0.1'] },
  };
  // Pod VMs boot the guest system image and its agent: a server whose guests are fakes.
  await server.close();
  server = await TestServer.start({ agents: new FakeAgentConnector() });
  const created = await server.service.create({ ...(imageSpec as unknown as Vm['spec']), driveReadOnly: false, pod }, { start: false });
  const raw = await server.grpcRaw<Vm>('GetVm', { id: created.id });
  const { json: overHttp } = await server.httpJson<Vm>('GET', `/v1/vms/${created.id}`);
  assert.deepEqual(raw.spec.pod, pod);
  assert.deepEqual(raw, overHttp);
  const refused = await server.httpJson<{ error: { details: { path: string; message: string }[] } }>('POST', '/v1/vms', { spec: { ...server.spec('again'), pod } });
  assert.equal(refused.status, 400);
  assert.match(refused.json.error.details.find((d) => d.path === 'spec.pod')?.message ?? '', /made through containerd/);
});

test('gRPC CreateVm accepts a spec with a proto3 optional field (kernel) set', async () => {
  const vm = await server.grpc<Vm>('CreateVm', { spec: server.spec('k', { kernel: server.drive }) });
  assert.equal(vm.spec.kernel, server.drive);
  assert.equal(vm.state, 'running');
});

test('gRPC StreamLogs for an unknown id ends with NOT_FOUND and hc-error-code', async () => {
  const stream = server.grpcCollect<{ data: Buffer }>('StreamLogs', { id: 'nope' });
  const end = await Promise.race([stream.done, timeout(1500)]);
  if (end === 'timeout') await stream.cancel();
  assert.notEqual(end, 'timeout', 'the call got no status within 1.5 s');
  const err = end as ServiceError;
  assert.equal(err.code, status.NOT_FOUND);
  assert.deepEqual(err.metadata.get('hc-error-code'), ['HC_VM_NOT_FOUND']);
});

test('GET /v1/events sends its response head before the first event', async () => {
  const stream = server.httpStream('/v1/events');
  await until('subscribed', () => server.service.events.size === 1);
  const head = await Promise.race([stream.response, timeout(1000)]);
  await stream.cancel();
  assert.deepEqual(head, { status: 200, contentType: 'application/x-ndjson' });
});

test('following a console log keeps at most one abort listener on its signal', async () => {
  const abort = new AbortController();
  setMaxListeners(1000, abort.signal); // count the leak without Node's warning on stderr
  const follower = (async () => {
    for await (const chunk of readConsoleLog(join(server.dir, 'no-such.log'), { follow: true, signal: abort.signal, pollMs: 2 })) void chunk;
  })();
  await new Promise((r) => setTimeout(r, 100));
  const listeners = getEventListeners(abort.signal, 'abort').length;
  abort.abort();
  await follower;
  assert.ok(listeners <= 1, `${listeners} abort listeners after ~50 polls`);
});
