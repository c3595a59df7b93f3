// Misbehaving registries (fake, on 127.0.0.1): corrupt and truncated data, 5xx, resets, redirects, sharing and limits.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { RegistryClient } from './client.js';
import { DigestMismatchError, ImageUnsupportedError, RegistryNotFoundError, RegistryUnavailableError, TransferInterruptedError } from './errors.js';
import { MediaTypes } from './media-types.js';
import { registryError, send, startFakeServer, type FakeServer } from './testing/fake-server.js';
import { imageContent, startFakeRegistry } from './testing/fake-registry.js';
import { buildImage, digestOf, type Blob, type TestImage } from './testing/test-image.js';

let image: TestImage;
let work: string;
const cleanup: Array<{ close(): Promise<void> }> = [];

before(async () => {
  image = await buildImage({ architecture: 'amd64' });
  work = await mkdtemp(join(tmpdir(), 'hc-faults-'));
});

after(async () => {
  for (const c of cleanup) await c.close();
  if (work) await rm(work, { recursive: true, force: true });
});

type Intercept = (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;

/** A fake registry serving `image` as hc/app:v1, a client for it (2 retries, fast backoff) and a fresh dir. */
async function setup(intercept?: Intercept, extra: { content?: Blob[]; clientOptions?: ConstructorParameters<typeof RegistryClient>[0] } = {}) {
  const server = await startFakeRegistry({ repository: 'hc/app', tags: { v1: image.manifest }, content: [...imageContent(image), ...(extra.content ?? [])], ...(intercept ? { intercept } : {}) });
  const client = new RegistryClient({ retries: 2, retryBaseDelayMs: 5, ...extra.clientOptions });
  cleanup.push(server, client);
  const dir = await mkdtemp(join(work, 'case-'));
  return { server, client, dir, ref: `${server.host}/hc/app:v1` };
}

const layer = (): Blob => image.layers[0] as Blob;
const isPath = (req: IncomingMessage, digestOrTag: string): boolean => req.url?.endsWith(`/${digestOrTag}`) === true && req.method === 'GET';
const hits = (server: FakeServer, suffix: string): number => server.requests.filter((r) => r.url.endsWith(suffix)).length;

test('a manifest that does not match Docker-Content-Digest is rejected', async () => {
  const { client, ref } = await setup((req, res) => {
    if (!isPath(req, 'v1')) return false;
    send(res, 200, image.manifest.bytes, { 'content-type': MediaTypes.ociManifest, 'docker-content-digest': digestOf(Buffer.from('other')) });
    return true;
  });
  await assert.rejects(client.resolve(ref), (err: unknown) => err instanceof DigestMismatchError && err.actual === image.manifest.digest);
});

test('blob bytes that do not match the digest: digest error, nothing kept, not retried', async () => {
  const { server, client, dir, ref } = await setup((req, res) => {
    if (!isPath(req, layer().digest)) return false;
    const wrong = Buffer.from(layer().bytes);
    wrong[10] = (wrong[10] ?? 0) ^ 1;
    send(res, 200, wrong);
    return true;
  });
  await assert.rejects(client.downloadBlob(ref, layer().digest, join(dir, 'layer'), { expectedSize: layer().bytes.length }), (err: unknown) => {
    return err instanceof DigestMismatchError && err.code === 'HC_IMAGE_DIGEST_MISMATCH' && err.expected === layer().digest;
  });
  assert.deepEqual(await readdir(dir), []);
  assert.equal(hits(server, layer().digest), 1);
  // A body longer than the descriptor size is cut off as a mismatch too.
  await assert.rejects(client.downloadBlob(ref, layer().digest, join(dir, 'layer'), { expectedSize: 10 }), DigestMismatchError);
});

test('a truncated blob (server closes early) is retried, then fails with nothing kept', async () => {
  const { server, client, dir, ref } = await setup((req, res) => {
    if (!isPath(req, layer().digest)) return false;
    res.writeHead(200, { 'content-length': String(layer().bytes.length) });
    res.write(layer().bytes.subarray(0, 100), () => setTimeout(() => res.socket?.destroy(), 10));
    return true;
  });
  // Under load undici may see the close before it hands over the 100 bytes, so 0 is a valid count too.
  await assert.rejects(client.downloadBlob(ref, layer().digest, join(dir, 'layer')), (err: unknown) => {
    return err instanceof TransferInterruptedError && err.code === 'HC_REGISTRY_UNAVAILABLE' && /broke off after (100|0) bytes/.test(err.message);
  });
  assert.equal(hits(server, layer().digest), 3, 'first attempt + 2 retries');
  assert.deepEqual(await readdir(dir), []);
});

test('503 and connection resets are retried with backoff; then success', async () => {
  let failures = 0;
  const { server, client, ref } = await setup((req, res) => {
    if (!isPath(req, 'v1') || failures >= 2) return false;
    failures++;
    if (failures === 1) req.socket.destroy();
    else registryError(res, 503, 'UNAVAILABLE', 'try later', { 'retry-after': '0' });
    return true;
  });
  const resolved = await client.resolve(ref);
  assert.equal(resolved.manifestDigest, image.manifest.digest);
  assert.equal(hits(server, '/manifests/v1'), 3);
});

test('persistent 5xx gives up after the retries; 4xx is never retried', async () => {
  const { server, client, dir, ref } = await setup((req, res) => {
    if (isPath(req, 'v1')) registryError(res, 503, 'UNAVAILABLE', 'down for maintenance');
    else if (isPath(req, layer().digest)) registryError(res, 400, 'BAD', 'nope');
    else return false;
    return true;
  });
  await assert.rejects(client.resolve(ref), (err: unknown) => err instanceof RegistryUnavailableError && err.status === 503 && /after 3 attempts/.test(err.message) && /maintenance/.test(err.message));
  assert.equal(hits(server, '/manifests/v1'), 3);
  await assert.rejects(client.downloadBlob(ref, layer().digest, join(dir, 'x')), (err: unknown) => err instanceof RegistryUnavailableError && err.status === 400);
  assert.equal(hits(server, layer().digest), 1);
  await assert.rejects(client.resolve(`${server.host}/hc/app:missing`), RegistryNotFoundError);
  assert.equal(hits(server, '/manifests/missing'), 1);
});

test('concurrent downloads of one digest make one request, whatever the paths; progress reaches every caller', async () => {
  const { server, client, dir, ref } = await setup();
  const progress: number[][] = [[], [], []];
  const paths = [join(dir, 'pull-1.tmp'), join(dir, 'pull-2.tmp'), join(dir, 'pull-2.tmp')];
  const results = await Promise.all(paths.map((p, i) => client.downloadBlob(ref, layer().digest, p, { onProgress: (n) => progress[i]?.push(n) })));
  assert.equal(hits(server, layer().digest), 1);
  assert.deepEqual(results.map((r) => r.path), paths);
  for (const p of progress) assert.equal(p.at(-1), layer().bytes.length);
  assert.deepEqual((await readdir(dir)).sort(), ['pull-1.tmp', 'pull-2.tmp'], 'no staging or temp files left');
  for (const p of paths) assert.equal(digestOf(await readFile(p)), layer().digest);
  // Later, a fresh download starts again (the shared one is over).
  await client.downloadBlob(ref, layer().digest, join(dir, 'later'));
  assert.equal(hits(server, layer().digest), 2);
});

test('a failing shared download fails every caller and leaves nothing', async () => {
  const { server, client, dir, ref } = await setup((req, res) => {
    if (!isPath(req, layer().digest)) return false;
    send(res, 200, Buffer.alloc(layer().bytes.length));
    return true;
  });
  const results = await Promise.allSettled([1, 2].map((n) => client.downloadBlob(ref, layer().digest, join(dir, `p${n}`))));
  assert.ok(results.every((r) => r.status === 'rejected' && r.reason instanceof DigestMismatchError));
  assert.equal(hits(server, layer().digest), 1);
  assert.deepEqual(await readdir(dir), []);
});

test('parallel downloads are limited (maxConcurrentDownloads)', async () => {
  const blobs = [1, 2, 3, 4, 5].map((n) => ({ bytes: Buffer.from(`blob ${n}`), digest: digestOf(Buffer.from(`blob ${n}`)), mediaType: 'x' }));
  let active = 0;
  let peak = 0;
  const { client, dir, ref } = await setup(
    async (req, res) => {
      const blob = blobs.find((b) => isPath(req, b.digest));
      if (!blob) return false;
      active++;
      peak = Math.max(peak, active);
      await delay(30);
      active--;
      send(res, 200, blob.bytes);
      return true;
    },
    { content: blobs, clientOptions: { maxConcurrentDownloads: 2 } },
  );
  await Promise.all(blobs.map((b, i) => client.downloadBlob(ref, b.digest, join(dir, `b${i}`))));
  assert.equal(peak, 2);
  assert.equal((await readdir(dir)).length, 5);
});

test('blob redirects are followed without sending credentials to the other host', async () => {
  const storage = await startFakeServer((_req, res) => send(res, 200, layer().bytes));
  cleanup.push(storage);
  const basic = `Basic ${Buffer.from('u:p').toString('base64')}`;
  const { server, client, dir, ref } = await setup(
    (req, res) => {
      if (req.headers.authorization !== basic) {
        registryError(res, 401, 'UNAUTHORIZED', 'auth', { 'www-authenticate': 'Basic realm="r"' });
        return true;
      }
      if (!isPath(req, layer().digest)) return false;
      res.writeHead(307, { location: `http://${storage.host}/bucket/${layer().digest}?sig=abc`, 'content-length': '0' });
      res.end();
      return true;
    },
    { clientOptions: { credentials: { get: async () => ({ username: 'u', password: 'p' }) } } },
  );
  await client.downloadBlob(ref, layer().digest, join(dir, 'layer'), { expectedSize: layer().bytes.length });
  assert.equal(digestOf(await readFile(join(dir, 'layer'))), layer().digest);
  assert.equal(storage.requests.length, 1);
  assert.equal(storage.requests[0]?.headers.authorization, undefined);
  assert.ok(server.requests.some((r) => r.headers.authorization === basic));
});

test('schema 1 manifests and non-image artifacts are unsupported; aborts leave nothing behind', async () => {
  const { client, dir, ref, server } = await setup((req, res) => {
    if (isPath(req, 'old')) send(res, 200, JSON.stringify({ schemaVersion: 1, name: 'hc/app', fsLayers: [] }), { 'content-type': MediaTypes.dockerSchema1Signed });
    else if (isPath(req, 'artifact')) {
      const m = JSON.parse(image.manifest.bytes.toString()) as { config: { mediaType: string } };
      m.config.mediaType = 'application/vnd.cncf.helm.config.v1+json';
      send(res, 200, JSON.stringify(m), { 'content-type': MediaTypes.ociManifest });
    } else if (isPath(req, layer().digest)) {
      res.writeHead(200, { 'content-length': String(layer().bytes.length) });
      res.write(layer().bytes.subarray(0, 100)); // then stall until the client aborts
    } else return false;
    return true;
  });
  await assert.rejects(client.resolve(`${server.host}/hc/app:old`), (err: unknown) => err instanceof ImageUnsupportedError && /schema 1/.test(err.message));
  await assert.rejects(client.resolve(`${server.host}/hc/app:artifact`), /not a container image/);
  const controller = new AbortController();
  const download = client.downloadBlob(ref, layer().digest, join(dir, 'layer'), { signal: controller.signal, onProgress: () => controller.abort() });
  await assert.rejects(download, (err: unknown) => err instanceof Error && err.name === 'AbortError');
  assert.deepEqual(await readdir(dir), []);
});
