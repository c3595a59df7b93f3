/**
 * Metadata over both transports: GetMetadata and SetMetadata, and no response, list or event ever
 * showing a secret (or a file's content), with the same fields on gRPC and HTTP.
 */
import { afterEach, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import type * as grpc from '@grpc/grpc-js';
import { FakeAgentConnector } from '../core/testing/fake-agent.js';
import { TestServer } from './testing-server.js';

const SECRET = 'S3CR3T-api-value';
const FILE_TEXT = 'password = hunter2-file\n';

let server: TestServer;
let agents: FakeAgentConnector;

beforeEach(async () => {
  agents = new FakeAgentConnector();
  server = await TestServer.start({ agents });
});
afterEach(async () => {
  await server.close();
});

function imageSpec(name: string, metadata: Record<string, unknown>): Record<string, unknown> {
  const { drive: _drive, driveReadOnly: _ro, ...spec } = server.spec(name);
  return { ...spec, image: 'docker.io/library/app:1', metadata };
}

const metadata = {
  values: { region: 'eu-1' },
  secrets: { api_key: SECRET },
  sshAuthorizedKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host'],
  files: [{ path: '/etc/app.conf', mode: '0600', owner: '1000:1000', content: FILE_TEXT }],
};

const shown = {
  values: { region: 'eu-1' },
  secrets: { api_key: '<secret>' },
  sshAuthorizedKeys: metadata.sshAuthorizedKeys,
  files: [{ path: '/etc/app.conf', mode: '0600', owner: '1000:1000', size: FILE_TEXT.length }],
};

function assertNoSecret(what: string, payload: unknown): void {
  const text = JSON.stringify(payload);
  assert.ok(!text.includes(SECRET), `${what} shows the secret: ${text}`);
  assert.ok(!text.includes('hunter2'), `${what} shows the file's content: ${text}`);
}

test('create, get and list show secrets as <secret> and files by size, identically on both transports, and events carry neither', async () => {
  const httpEvents = server.httpStream('/v1/events');
  assert.equal(((await httpEvents.response) as { status: number }).status, 200);
  const grpcEvents = server.grpcCollect<unknown>('WatchEvents', {});
  const created = await server.httpJson<{ id: string; spec: { metadata: unknown } }>('POST', '/v1/vms', { spec: imageSpec('app', metadata) });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  assert.deepEqual(created.json.spec.metadata, shown);
  const id = created.json.id;
  await server.httpJson('POST', `/v1/vms/${id}/metadata`, { values: { other: SECRET }, secret: true });
  await server.grpc('StopVm', { id, force: true });

  const overHttp = (await server.httpJson<{ spec: { metadata: unknown } }>('GET', `/v1/vms/${id}`)).json;
  const overGrpc = await server.grpc<{ spec: { metadata: unknown } }>('GetVm', { id });
  assert.deepEqual(overHttp, overGrpc);
  assert.deepEqual(overHttp.spec.metadata, { ...shown, secrets: { api_key: '<secret>', other: '<secret>' } });
  const listHttp = (await server.httpJson<unknown>('GET', '/v1/vms')).json;
  const listGrpc = await server.grpc<unknown>('ListVms', {});
  assert.deepEqual(listHttp, listGrpc);
  for (const [what, payload] of Object.entries({ created: created.json, overHttp, overGrpc, listHttp, listGrpc })) assertNoSecret(what, payload);

  assert.ok(httpEvents.items.length > 0 && grpcEvents.items.length > 0);
  assertNoSecret('HTTP events', Buffer.concat(httpEvents.items).toString('utf8'));
  assertNoSecret('gRPC events', grpcEvents.items);
  await httpEvents.cancel();
  await grpcEvents.cancel();
  assert.equal(JSON.stringify(server.service.getMetadata(id).secrets), JSON.stringify({ api_key: SECRET, other: SECRET }), 'the store keeps them, for the guest');
});

test('SetMetadata and GetMetadata: the same on both transports; a running guest gets the values at once', async () => {
  const { json: vm } = await server.httpJson<{ id: string }>('POST', '/v1/vms', { spec: imageSpec('app', metadata) });
  const set = await server.grpc<unknown>('SetMetadata', { id: 'app', values: { token: SECRET, zone: 'a' }, secret: true });
  const all = { values: { region: 'eu-1' }, secrets: { api_key: '<secret>', token: '<secret>', zone: '<secret>' } };
  assert.deepEqual(set, all);
  assert.deepEqual(agents.metadataSets.at(-1), { values: { region: 'eu-1' }, secrets: { api_key: SECRET, token: SECRET, zone: 'a' } });
  const plain = await server.httpJson<unknown>('POST', `/v1/vms/${vm.id}/metadata`, { values: { region: 'eu-2' } });
  assert.equal(plain.status, 200);
  const after = { ...all, values: { region: 'eu-2' } };
  assert.deepEqual(plain.json, after);
  assert.deepEqual((await server.httpJson<unknown>('GET', `/v1/vms/app/metadata`)).json, after);
  assert.deepEqual(await server.grpc<unknown>('GetMetadata', { id: vm.id }), after);
  assert.deepEqual((await server.httpJson<unknown>('GET', `/v1/vms/app/metadata/token`)).json, { values: {}, secrets: { token: '<secret>' } });
  assert.deepEqual(await server.grpc<unknown>('GetMetadata', { id: 'app', key: 'region' }), { values: { region: 'eu-2' }, secrets: {} });

  const missing = await server.http('GET', '/v1/vms/app/metadata/nope');
  assert.equal(missing.status, 404);
  assert.match(missing.text, /HC_NOT_FOUND.*VM app has no metadata key \\"nope\\"/);
  assert.equal((await server.grpcError('GetMetadata', { id: 'app', key: 'nope' })).code, 5 satisfies grpc.status.NOT_FOUND);
});

test('bad SetMetadata requests are refused with the culprit named, and change nothing', async () => {
  await server.httpJson('POST', '/v1/vms', { spec: imageSpec('app', metadata) });
  const before = JSON.stringify(server.service.get('app'));
  const cases: [unknown, RegExp][] = [
    [{ values: 'x=y' }, /values must be an object of "key": "value" strings/],
    [{ values: { a: 1 } }, /values must be an object of "key": "value" strings/],
    [{ values: { a: 'b' }, secret: 'yes' }, /secret must be true or false/],
    [{ values: {} }, /nothing to set/],
    [{ values: { '../x': 'b' } }, /metadata key "\.\.\/x": must be 1-128 characters/],
    [{ values: { big: 'x'.repeat(70_000) } }, /metadata of VM app: values and secrets would hold \d+ bytes/],
  ];
  for (const [body, message] of cases) {
    const r = await server.http('POST', '/v1/vms/app/metadata', { body });
    assert.equal(r.status, 400, `${JSON.stringify(body).slice(0, 80)}: ${r.text}`);
    assert.match(JSON.parse(r.text).error.message as string, message);
  }
  const proto = await server.http('POST', '/v1/vms/app/metadata', { rawBody: '{"values":{"__proto__":"x"}}' });
  assert.equal(proto.status, 400, proto.text);
  const overGrpc = await server.grpcError('SetMetadata', { id: 'app', values: { 'no space': 'b' } });
  assert.equal((await server.grpcError('SetMetadata', { id: 'app', values: { __proto__x: 'b' } })).code, 3 satisfies grpc.status.INVALID_ARGUMENT);
  assert.equal(overGrpc.code, 3 satisfies grpc.status.INVALID_ARGUMENT);
  assert.equal(JSON.stringify(server.service.get('app')), before);
  assert.equal(agents.metadataSets.length, 0);
});

test('CreateVm: bad metadata is named by its spec field, never shows a secret, and creates nothing', async () => {
  const bad = await server.http('POST', '/v1/vms', { body: { spec: imageSpec('app', { secrets: { api_key: 123456, 'two words': SECRET }, values: { my_key: 5 } }) } });
  assert.equal(bad.status, 400);
  const error = JSON.parse(bad.text).error as { message: string; details: { path: string; value?: unknown }[] };
  assert.deepEqual(error.details.map((d) => [d.path, d.value]), [
    ['spec.metadata.values.my_key', 5],
    ['spec.metadata.secrets.api_key', '<secret>'],
    ['spec.metadata.secrets.two words', '<secret>'],
  ]);
  assert.ok(!bad.text.includes('123456') && !bad.text.includes(SECRET), bad.text);

  const onDrive = await server.http('POST', '/v1/vms', { body: { spec: server.spec('disk', { metadata: { values: { a: 'b' }, secrets: { k: SECRET } } }) } });
  assert.equal(onDrive.status, 400);
  assert.ok(!onDrive.text.includes(SECRET), `a rule about the whole table does not show the table: ${onDrive.text}`);
  assert.match(onDrive.text, /"message":"invalid VM spec: spec\.metadata: metadata needs an image VM \(image without drive\)/);
  const huge = await server.http('POST', '/v1/vms', { body: { spec: imageSpec('app', { files: [{ path: '/big', content: 'x'.repeat(1024 * 1024) }] }) } });
  assert.equal(huge.status, 400);
  assert.match(huge.text, /spec\.metadata: metadata files and SSH keys hold 1048580 bytes/);
  assert.ok(huge.text.length < 1000, 'nor echo its megabyte');
  assert.deepEqual((await server.httpJson<{ vms: unknown[] }>('GET', '/v1/vms')).json.vms, []);
});

test('CreateVm takes a spec with the full 1 MiB of files over HTTP, even JSON-escaped, and over gRPC', async () => {
  const path = '/big';
  const content = '\u0001'.repeat(1024 * 1024 - path.length); // six bytes each in JSON
  const overHttp = await server.http('POST', '/v1/vms', { body: { spec: imageSpec('http-vm', { files: [{ path, content }] }) } });
  assert.equal(overHttp.status, 201, overHttp.text.slice(0, 300));
  const overGrpc = await server.grpc<{ spec: { metadata: { files: { size: number }[] } } }>('CreateVm', { spec: imageSpec('grpc-vm', { files: [{ path, content }] }) });
  assert.equal(overGrpc.spec.metadata.files[0]?.size, content.length);
  assert.equal(agents.lastStart?.files?.[0]?.content.byteLength, content.length, 'and the guest gets it all');
});

test('openapi.json documents the metadata routes, and maps as objects of strings', async () => {
  const doc = (await server.httpJson<{ paths: Record<string, Record<string, { operationId: string }>>; components: { schemas: Record<string, { properties: Record<string, unknown> }> } }>('GET', '/openapi.json')).json;
  assert.equal(doc.paths['/v1/vms/{id}/metadata']?.['get']?.operationId, 'GetMetadata');
  assert.equal(doc.paths['/v1/vms/{id}/metadata']?.['post']?.operationId, 'SetMetadata');
  assert.deepEqual(doc.components.schemas['VmMetadata']?.properties['secrets'], { type: 'object', additionalProperties: { type: 'string' }, description: 'every value is "<secret>"' });
});

test('restores and clones show secrets as <secret> and files by size, on both transports', async () => {
  await server.close();
  server = await TestServer.start({ agents, snapshots: true });
  const { json: vm } = await server.httpJson<{ id: string }>('POST', '/v1/vms', { spec: imageSpec('app', metadata) });
  const cloned = await server.httpJson<{ vms: { spec: { metadata: unknown } }[] }>('POST', `/v1/vms/${vm.id}/clone`, { count: 1 });
  assert.equal(cloned.status, 201, JSON.stringify(cloned.json));
  assert.deepEqual(cloned.json.vms[0]!.spec.metadata, shown);
  const overGrpc = await server.grpc<{ vms: unknown[] }>('CloneVm', { id: vm.id, count: 1 });
  const snapshot = await server.grpc<{ id: string }>('CreateSnapshot', { id: vm.id, name: 's' });
  const spawned = await server.httpJson<{ spec: { metadata: unknown } }>('POST', `/v1/snapshots/${snapshot.id}/spawn`, { name: 'app-b' });
  assert.equal(spawned.status, 201, JSON.stringify(spawned.json));
  assert.deepEqual(spawned.json.spec.metadata, shown);
  const restoredGrpc = await server.grpc<unknown>('RestoreSnapshot', { id: snapshot.id, name: 'app-c' });
  for (const [what, payload] of Object.entries({ cloned: cloned.json, overGrpc, spawned: spawned.json, restoredGrpc })) assertNoSecret(what, payload);
});
