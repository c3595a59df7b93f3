// Against a real docker-registry 2.8 on 127.0.0.1: push images built in code, then resolve and pull them.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistryClient } from './client.js';
import { DigestMismatchError, RegistryNotFoundError } from './errors.js';
import { MediaTypes } from './media-types.js';
import { parseReference } from './reference.js';
import { startRegistry, type RegistryProcess } from './testing/registry-process.js';
import { buildImage, buildIndex, digestOf, pushImage, type TestImage } from './testing/test-image.js';

let registry: RegistryProcess;
let client: RegistryClient;
let work: string;
let amd64: TestImage;
let arm64: TestImage;
let dockerImage: TestImage;
let indexDigest: string;

before(async () => {
  registry = await startRegistry();
  client = new RegistryClient({ retryBaseDelayMs: 5 });
  work = await mkdtemp(join(tmpdir(), 'hc-pull-'));
  amd64 = await buildImage({ architecture: 'amd64' });
  arm64 = await buildImage({ architecture: 'arm64', variant: 'v8' });
  await pushImage(client, parseReference(`${registry.host}/hc/app`), amd64);
  await pushImage(client, parseReference(`${registry.host}/hc/app`), arm64);
  const index = buildIndex([amd64, arm64]);
  indexDigest = await client.pushManifest(`${registry.host}/hc/app:v1`, index.mediaType, index.bytes);
  assert.equal(indexDigest, index.digest);
  dockerImage = await buildImage({ architecture: 'amd64', format: 'docker', tag: 'docker' });
  await pushImage(client, parseReference(`${registry.host}/hc/docker:single`), dockerImage);
  const list = buildIndex([dockerImage], 'docker');
  await client.pushManifest(`${registry.host}/hc/docker:list`, list.mediaType, list.bytes);
});

after(async () => {
  await client?.close();
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

test('resolving a tag that names an OCI index picks linux/amd64 and verifies everything', async () => {
  const r = await client.resolve(`${registry.host}/hc/app:v1`);
  assert.equal(r.indexDigest, indexDigest);
  assert.equal(r.indexBytes?.length, buildIndex([amd64, arm64]).bytes.length);
  assert.equal(r.manifestDigest, amd64.manifest.digest);
  assert.equal(r.manifestMediaType, MediaTypes.ociManifest);
  assert.deepEqual(r.manifestBytes, amd64.manifest.bytes);
  assert.equal(r.configDigest, amd64.config.digest);
  assert.equal(r.config.architecture, 'amd64');
  assert.deepEqual(r.config.config?.Cmd, ['/bin/sh']);
  assert.deepEqual(r.platform, { os: 'linux', architecture: 'amd64' });
  assert.deepEqual(r.manifest.layers.map((l) => l.digest), amd64.layers.map((l) => l.digest));
});

test('platform selection: arm64 is found, a missing platform lists the available ones', async () => {
  const r = await client.resolve(`${registry.host}/hc/app:v1`, { platform: { os: 'linux', architecture: 'arm64' } });
  assert.equal(r.manifestDigest, arm64.manifest.digest);
  assert.equal(r.config.architecture, 'arm64');
  await assert.rejects(client.resolve(`${registry.host}/hc/app:v1`, { platform: { os: 'linux', architecture: 'riscv64' } }), (err: unknown) => {
    return err instanceof RegistryNotFoundError && /has no image for linux\/riscv64; available: linux\/amd64, linux\/arm64\/v8/.test(err.message);
  });
});

test('digest references: a platform manifest directly, and tag@digest of the index', async () => {
  const direct = await client.resolve(`${registry.host}/hc/app@${arm64.manifest.digest}`, { platform: { os: 'linux', architecture: 'arm64' } });
  assert.equal(direct.manifestDigest, arm64.manifest.digest);
  assert.equal(direct.indexDigest, undefined);
  const pinned = await client.resolve(`${registry.host}/hc/app:ignored-tag@${indexDigest}`);
  assert.equal(pinned.manifestDigest, amd64.manifest.digest);
  // A single-platform image for another architecture is refused rather than booted.
  await assert.rejects(client.resolve(`${registry.host}/hc/app@${arm64.manifest.digest}`), /is an image for linux\/arm64, not linux\/amd64/);
});

test('Docker schema 2 manifests and manifest lists resolve', async () => {
  const single = await client.resolve(`${registry.host}/hc/docker:single`);
  assert.equal(single.manifestMediaType, MediaTypes.dockerManifest);
  assert.equal(single.manifest.config.mediaType, MediaTypes.dockerConfig);
  assert.equal(single.manifest.layers[0]?.mediaType, MediaTypes.dockerLayerGzip);
  assert.equal(single.indexDigest, undefined);
  const list = await client.resolve(`${registry.host}/hc/docker:list`);
  assert.equal(list.manifestDigest, dockerImage.manifest.digest);
  assert.ok(list.indexDigest);
  const fetched = await client.getManifest(`${registry.host}/hc/docker:list`);
  assert.equal(fetched.mediaType, MediaTypes.dockerManifestList);
});

test('layers download atomically with progress, and stream with verification', async () => {
  const dir = join(work, 'blobs');
  for (const layer of amd64.layers) {
    const seen: number[] = [];
    const dest = join(dir, layer.digest.replace(':', '-'));
    const result = await client.downloadBlob(`${registry.host}/hc/app:v1`, layer.digest, dest, { expectedSize: layer.bytes.length, onProgress: (n) => seen.push(n) });
    assert.deepEqual(result, { digest: layer.digest, size: layer.bytes.length, path: dest });
    assert.equal(digestOf(await readFile(dest)), layer.digest);
    assert.equal(seen.at(-1), layer.bytes.length);
  }
  assert.equal((await readdir(dir)).length, 2, 'only the two layer files, no temp files');
  const stream = await client.fetchBlob(`${registry.host}/hc/app`, amd64.config.digest);
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk);
  assert.equal(`sha256:${hash.digest('hex')}`, amd64.config.digest);
});

test('a blob corrupted in the registry storage is rejected and nothing is kept', async () => {
  const bytes = Buffer.from(`unique payload ${Date.now()} ${'z'.repeat(3000)}`);
  const digest = digestOf(bytes);
  await client.pushBlob(`${registry.host}/hc/corrupt`, digest, bytes);
  const flipped = Buffer.from(bytes);
  flipped[100] = (flipped[100] ?? 0) ^ 0xff; // same size, different content
  await writeFile(registry.blobPath(digest), flipped);
  const dir = join(work, 'corrupt');
  await assert.rejects(client.downloadBlob(`${registry.host}/hc/corrupt`, digest, join(dir, 'blob'), { expectedSize: bytes.length }), (err: unknown) => {
    return err instanceof DigestMismatchError && err.code === 'HC_IMAGE_DIGEST_MISMATCH' && err.expected === digest && err.actual === digestOf(flipped);
  });
  assert.deepEqual(await readdir(dir), [], 'neither the file nor a temp file remains');
});

test('unknown tags and blobs are not-found errors; pushes skip blobs the registry has', async () => {
  await assert.rejects(client.resolve(`${registry.host}/hc/app:nope`), (err: unknown) => err instanceof RegistryNotFoundError && /MANIFEST_UNKNOWN|not found/.test(err.message));
  await assert.rejects(client.downloadBlob(`${registry.host}/hc/app`, `sha256:${'0'.repeat(64)}`, join(work, 'missing')), RegistryNotFoundError);
  const again = await client.pushBlob(`${registry.host}/hc/app`, amd64.config.digest, amd64.config.bytes);
  assert.equal(again.existed, true);
  const file = join(work, 'from-file');
  const content = Buffer.from('pushed from a file\n'.repeat(1000));
  await writeFile(file, content);
  const pushed = await client.pushBlob(`${registry.host}/hc/files`, digestOf(content), { path: file });
  assert.deepEqual(pushed, { digest: digestOf(content), size: content.length, existed: false });
  // The registry checks the digest of what we upload.
  await assert.rejects(client.pushBlob(`${registry.host}/hc/files`, `sha256:${'1'.repeat(64)}`, Buffer.from('mismatch')), (err: unknown) => err instanceof DigestMismatchError && /DIGEST_INVALID/.test(err.message));
});

test('ping reports the API version of an open registry', async () => {
  assert.deepEqual(await client.ping(registry.host), { registry: registry.host, apiVersion: 'registry/2.0', authenticated: false, authRequired: false });
});
