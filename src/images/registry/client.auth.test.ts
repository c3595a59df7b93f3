// Authentication: a real docker-registry behind htpasswd (Basic), and a fake registry + token server (Bearer).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistryClient } from './client.js';
import { CredentialStore } from './credentials.js';
import { RegistryAuthError } from './errors.js';
import { parseReference } from './reference.js';
import { send, startFakeServer, type FakeServer } from './testing/fake-server.js';
import { imageContent, startFakeRegistry } from './testing/fake-registry.js';
import { startRegistry, type RegistryProcess } from './testing/registry-process.js';
import { buildImage, digestOf, pushImage, type TestImage } from './testing/test-image.js';

let basicRegistry: RegistryProcess;
let work: string;
let image: TestImage;
const clients: RegistryClient[] = [];
const servers: FakeServer[] = [];

function newClient(options: ConstructorParameters<typeof RegistryClient>[0] = {}): RegistryClient {
  const c = new RegistryClient({ retryBaseDelayMs: 5, ...options });
  clients.push(c);
  return c;
}

before(async () => {
  basicRegistry = await startRegistry({ htpasswd: { username: 'alice', password: 's3cret' } });
  work = await mkdtemp(join(tmpdir(), 'hc-auth-'));
  image = await buildImage({ architecture: 'amd64' });
});

after(async () => {
  for (const c of clients) await c.close();
  for (const s of servers) await s.close();
  await basicRegistry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

test('htpasswd registry: no credentials is an auth error naming registry and repository', async () => {
  const anonymous = newClient();
  await assert.rejects(anonymous.resolve(`${basicRegistry.host}/hc/app:v1`), (err: unknown) => {
    return err instanceof RegistryAuthError && err.code === 'HC_REGISTRY_AUTH' && err.message.includes(`${basicRegistry.host}/hc/app`) && /hypercore login/.test(err.message);
  });
  const wrong = newClient({ credentials: { get: async () => ({ username: 'alice', password: 'nope' }) } });
  await assert.rejects(wrong.resolve(`${basicRegistry.host}/hc/app:v1`), (err: unknown) => err instanceof RegistryAuthError && /still answered 401/.test(err.message));
  assert.deepEqual(await anonymous.ping(basicRegistry.host), { registry: basicRegistry.host, authenticated: false, authRequired: true });
  await assert.rejects(anonymous.ping(basicRegistry.host, { requireAuth: true, credentials: { username: 'alice', password: 'bad' } }), RegistryAuthError);
});

test('htpasswd registry: credentials from config.json allow push and pull', async () => {
  const store = new CredentialStore({ path: join(work, 'docker', 'config.json') });
  await store.login(basicRegistry.host, 'alice', 's3cret');
  const client = newClient({ credentials: store });
  const ping = await client.ping(basicRegistry.host, { requireAuth: true });
  assert.equal(ping.authenticated, true);
  await pushImage(client, parseReference(`${basicRegistry.host}/hc/app:v1`), image);
  const resolved = await client.resolve(`${basicRegistry.host}/hc/app:v1`);
  assert.equal(resolved.manifestDigest, image.manifest.digest);
  const layer = image.layers[0];
  assert.ok(layer);
  const dest = join(work, 'layer');
  await client.downloadBlob(`${basicRegistry.host}/hc/app`, layer.digest, dest, { expectedSize: layer.bytes.length });
  assert.equal(digestOf(await readFile(dest)), layer.digest);
});

/** A token server that hands out numbered tokens (optionally only for alice:pw) and counts requests. */
async function startTokenServer(options: { requireBasic?: boolean; field?: 'token' | 'access_token' } = {}): Promise<FakeServer> {
  let issued = 0;
  const server = await startFakeServer((req, res) => {
    const expected = `Basic ${Buffer.from('alice:pw').toString('base64')}`;
    if (options.requireBasic && req.headers.authorization !== expected) return send(res, 401, '{"details":"bad credentials"}');
    issued++;
    send(res, 200, JSON.stringify({ [options.field ?? 'token']: `tok-${issued}`, expires_in: 300 }), { 'content-type': 'application/json' });
  });
  servers.push(server);
  return server;
}

async function startBearerRegistry(token: FakeServer): Promise<FakeServer> {
  const registry = await startFakeRegistry({
    repository: 'hc/app',
    tags: { v1: image.manifest },
    content: imageContent(image),
    challenge: (req) =>
      req.headers.authorization === 'Bearer tok-1'
        ? undefined
        : `Bearer realm="http://${token.host}/token",service="fake-registry",scope="repository:hc/app:pull"`,
  });
  servers.push(registry);
  return registry;
}

test('bearer: the token is fetched once with service and scope, then reused for every request', async () => {
  const token = await startTokenServer();
  const registry = await startBearerRegistry(token);
  const client = newClient();
  const resolved = await client.resolve(`${registry.host}/hc/app:v1`);
  assert.equal(resolved.manifestDigest, image.manifest.digest);
  for (const [i, layer] of image.layers.entries()) {
    await client.downloadBlob(`${registry.host}/hc/app:v1`, layer.digest, join(work, `bearer-${i}`), { expectedSize: layer.bytes.length });
  }
  assert.equal(token.requests.length, 1, 'one token for the whole pull');
  const url = new URL(token.requests[0]?.url ?? '', 'http://x');
  assert.equal(url.searchParams.get('service'), 'fake-registry');
  assert.deepEqual(url.searchParams.getAll('scope'), ['repository:hc/app:pull']);
  assert.equal(token.requests[0]?.headers.authorization, undefined, 'anonymous token request without credentials');
  const unauthorized = registry.requests.filter((r) => r.headers.authorization !== 'Bearer tok-1');
  assert.equal(unauthorized.length, 1, 'only the very first request paid the 401 round trip');
  assert.equal(registry.requests.length, 5, 'manifest twice (401 + retry), config, two layers');
});

test('bearer: credentials go to the token service as Basic; access_token is accepted; refusals are auth errors', async () => {
  const token = await startTokenServer({ requireBasic: true, field: 'access_token' });
  const registry = await startBearerRegistry(token);
  const good = newClient({ credentials: { get: async () => ({ username: 'alice', password: 'pw' }) } });
  assert.equal((await good.resolve(`${registry.host}/hc/app:v1`)).manifestDigest, image.manifest.digest);
  const anonymous = newClient();
  await assert.rejects(anonymous.resolve(`${registry.host}/hc/app:v1`), (err: unknown) => {
    return err instanceof RegistryAuthError && err.message.includes(`${registry.host}/hc/app`) && /requires credentials/.test(err.message);
  });
  const bad = newClient({ credentials: { get: async () => ({ username: 'alice', password: 'wrong' }) } });
  await assert.rejects(bad.resolve(`${registry.host}/hc/app:v1`), /rejected the credentials of "alice"/);
});
