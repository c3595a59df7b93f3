/** Every route and gRPC method has its scope written down; none falls back to the fail-closed default by accident. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as protoLoader from '@grpc/proto-loader';
import type { HTTPMethods } from 'fastify';
import type { RemoteAuth } from './authenticate.js';
import { HypercoreMetrics } from '../../metrics/hypercore-metrics.js';
import { buildHttpApi } from '../http-server.js';
import type { ImageOperations } from '../image-operations.js';
import type { VmOperations } from '../operations.js';
import { PROTO_DIR, PROTO_FILES } from '../proto.js';
import type { TokenOperations } from '../token-operations.js';
import { registerProcessSockets } from '../websocket-process.js';
import type { VmService } from '../../core/vm-service.js';
import { grpcMethodScopes, grpcScope, httpRouteScopes, httpScope } from './scopes.js';

test('the remote API builds only when every route has a scope, and every scope names a route', async () => {
  const stub = {} as never;
  const auth = { check: stub as RemoteAuth, log: { info() {}, warn() {}, error() {}, debug() {}, child() { return auth.log; } } };
  const app = buildHttpApi(stub as VmOperations, stub as ImageOperations, { tokens: stub as TokenOperations, metrics: new HypercoreMetrics({ vms: () => [], providers: ['qemu'] }), auth });
  await registerProcessSockets(app, stub as VmService);
  await app.ready();
  for (const key of Object.keys(httpRouteScopes)) {
    const [method, url] = key.split(' ') as [HTTPMethods, string];
    assert.ok(app.hasRoute({ method, url }), `the table names ${key}, which is not a route`);
  }
  await app.close();
  const another = buildHttpApi(stub as VmOperations, undefined, { auth });
  assert.throws(() => another.get('/v1/unscoped', async () => ({})), /route GET \/v1\/unscoped has no scope/);
  await another.close();
});

test('every gRPC method of the protos has a scope', () => {
  const definition = protoLoader.loadSync(PROTO_FILES, { includeDirs: [PROTO_DIR] });
  const methods = Object.values(definition).flatMap((service) => (typeof service === 'object' && service !== null && !('format' in service) ? Object.values(service as Record<string, { path?: string }>).map((m) => m.path) : [])).filter((p): p is string => typeof p === 'string');
  assert.ok(methods.length >= 20, `found ${methods.length} methods`);
  for (const path of methods) assert.ok(path.slice(path.lastIndexOf('/') + 1) in grpcMethodScopes, `${path} has no scope`);
});

test('streams that run processes need write; unknown calls need admin; unmatched HTTP routes need read (a 404)', () => {
  assert.equal(httpScope('GET', '/v1/vms/:id/exec'), 'write');
  assert.equal(httpScope('GET', '/v1/vms/:id/attach'), 'write');
  assert.equal(grpcScope('/hypercore.v1.VmService/Exec'), 'write');
  assert.equal(httpScope('GET', '/v1/something-new'), 'admin');
  assert.equal(grpcScope('/hypercore.v1.VmService/Reboot'), 'admin');
  assert.equal(httpScope('GET', undefined), 'read');
  assert.equal(httpScope('HEAD', '/v1/vms'), 'read');
});
