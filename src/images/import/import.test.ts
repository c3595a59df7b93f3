/**
 * Hostile image archives: names in manifest.json / index.json that point out of the archive, at
 * symlinks or device nodes, or configs a pull would refuse. Each is refused with an error naming
 * the culprit and leaves nothing in the store.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImageImporter } from './index.js';
import { normalizeReference } from '../registry-source.js';
import { imageServiceFixture, type ImageServiceFixture } from '../testing/image-service-fixture.js';
import { buildImage, buildLayer, sha256, writeDockerSaveTar, writeOciLayoutTar, writeTar, type ArchiveEntry, type BuiltImage, type BuiltLayer } from '../testing/oci-builder.js';

let fx: ImageServiceFixture;
let importer: ImageImporter;
let layer: BuiltLayer;
let image: BuiltImage;
/** Files outside any archive that a hostile one names: a valid config and layer of a real image. */
let outside: string;

before(async () => {
  fx = await imageServiceFixture();
  importer = new ImageImporter(fx.images, normalizeReference, join(fx.dir, 'images', 'tmp'));
  layer = await buildLayer([{ type: 'file', path: 'hello', content: 'hi\n' }], { gzip: false });
  image = buildImage([layer]);
  outside = join(fx.dir, 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'config.json'), image.config.bytes);
  writeFileSync(join(outside, 'layer.tar'), layer.bytes);
});

after(() => fx.close());

function assertNothingStored(): void {
  assert.deepEqual(fx.images.list(), []);
  const blobs = join(fx.dir, 'images', 'blobs', 'sha256');
  assert.deepEqual(readdirSync(blobs, { withFileTypes: true }).map((d) => d.name).filter((n) => !n.startsWith('.')), [], 'no blob is kept');
  assert.deepEqual(readdirSync(join(fx.dir, 'images', 'blocks')), []);
  assert.deepEqual(readdirSync(join(fx.dir, 'images', 'tmp')), [], 'no scratch directory is left');
}

async function dockerSave(name: string, manifest: unknown, extra: ArchiveEntry[] = []): Promise<string> {
  const path = join(fx.dir, `${name}.tar`);
  await writeTar(path, [{ name: 'manifest.json', bytes: Buffer.from(JSON.stringify(manifest)) }, ...extra]);
  return path;
}

async function refused(archive: string, pattern: RegExp, code = 'HC_IMAGE_UNSUPPORTED'): Promise<void> {
  await assert.rejects(importer.importTar(archive), (err: Error & { code?: string }) => {
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    return true;
  });
  assertNothingStored();
}

test('a well-formed docker save archive imports (the baseline the attacks differ from)', async () => {
  const path = join(fx.dir, 'good.tar');
  await writeDockerSaveTar([layer], image, path, 'good/app:1');
  const imported = await importer.importTar(path);
  assert.equal(imported.reference, 'docker.io/good/app:1');
  fx.images.delete('good/app:1', false);
  await fx.images.prune(false);
  assertNothingStored();
});

test("docker save: a Config or Layers name with ../ does not reach the host's files", async () => {
  const up = `${'../'.repeat(12)}${outside.slice(1)}`;
  await refused(await dockerSave('dotdot-config', [{ Config: `${up}/config.json`, RepoTags: ['evil/a:1'], Layers: ['layer.tar'] }], [{ name: 'layer.tar', bytes: layer.bytes }]), /Config names ".*\/config\.json", which is not a file in the archive/);
  await refused(await dockerSave('dotdot-layer', [{ Config: 'config.json', RepoTags: ['evil/a:1'], Layers: [`${up}/layer.tar`] }], [{ name: 'config.json', bytes: image.config.bytes }]), /Layers names ".*\/layer\.tar", which is not a file in the archive/);
  // A name that climbs out and back in still names nothing the archive holds.
  await refused(await dockerSave('dotdot-inner', [{ Config: 'x/../../config.json', RepoTags: ['evil/a:1'], Layers: [] }], [{ name: 'config.json', bytes: image.config.bytes }]), /not a file in the archive/);
});

test('docker save: absolute names are refused', async () => {
  await refused(await dockerSave('abs', [{ Config: join(outside, 'config.json'), RepoTags: ['evil/a:1'], Layers: [join(outside, 'layer.tar')] }]), /Config names ".*outside\/config\.json", which is not a file in the archive/);
});

test('docker save: names of symlinks and device nodes are refused', async () => {
  await refused(
    await dockerSave('symlink', [{ Config: 'config.json', RepoTags: ['evil/a:1'], Layers: ['layer.tar'] }], [
      { name: 'config.json', symlink: join(outside, 'config.json') },
      { name: 'layer.tar', bytes: layer.bytes },
    ]),
    /entry "config\.json" is not a plain file/,
  );
  await refused(
    await dockerSave('device', [{ Config: 'config.json', RepoTags: ['evil/a:1'], Layers: ['zero'] }], [
      { name: 'config.json', bytes: image.config.bytes },
      { name: 'zero', device: { major: 1, minor: 5 } },
    ]),
    /entry "zero" is not a plain file/,
  );
  await refused(await dockerSave('host-device', [{ Config: '/dev/zero', RepoTags: ['evil/a:1'], Layers: [] }]), /Config names "\/dev\/zero"/);
  // A directory of the archive is not a file either.
  await refused(await dockerSave('dir', [{ Config: 'sub', RepoTags: ['evil/a:1'], Layers: [] }], [{ name: 'sub/file', bytes: Buffer.from('x') }]), /Config names "sub", which is not a file/);
});

test('docker save: the config is validated as a pull validates it', async () => {
  const entries = (config: Buffer): ArchiveEntry[] => [
    { name: 'config.json', bytes: config },
    { name: 'layer.tar', bytes: layer.bytes },
  ];
  const manifest = [{ Config: 'config.json', RepoTags: ['evil/a:1'], Layers: ['layer.tar'] }];
  await refused(await dockerSave('config-garbage', manifest, entries(Buffer.from('not json'))), /config of docker\.io\/evil\/a:1 is not a JSON object/);
  await refused(await dockerSave('config-shape', manifest, entries(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux' })))), /the config of docker\.io\/evil\/a:1 is invalid/);
  const arm = JSON.stringify({ architecture: 'arm64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.diffId] } });
  await refused(await dockerSave('config-arch', manifest, entries(Buffer.from(arm))), /is an image for linux\/arm64, not linux\/amd64/, 'HC_IMAGE_NOT_FOUND');
  const noLayers = JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } });
  await refused(await dockerSave('config-layers', manifest, entries(Buffer.from(noLayers))), /lists 0 layer diff ids but the manifest has 1 layers/);
  await refused(await dockerSave('config-huge', manifest, entries(Buffer.alloc(9 * 1024 * 1024, 0x20))), /"config\.json" in the archive .* is 9437184 bytes; at most 8388608/, 'HC_IMAGE_LIMIT_EXCEEDED');
});

/** An OCI layout tar whose index.json lists `descriptor`, with `extra` entries. */
async function ociLayout(name: string, descriptor: Record<string, unknown>, extra: ArchiveEntry[]): Promise<string> {
  const index = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ ...descriptor, annotations: { 'io.containerd.image.name': 'evil/oci:1' } }] };
  const path = join(fx.dir, `${name}.tar`);
  await writeTar(path, [{ name: 'oci-layout', bytes: Buffer.from('{"imageLayoutVersion":"1.0.0"}') }, { name: 'index.json', bytes: Buffer.from(JSON.stringify(index)) }, ...extra]);
  return path;
}

const blobEntry = (b: { digest: string; bytes: Buffer }): ArchiveEntry => ({ name: `blobs/sha256/${b.digest.slice(7)}`, bytes: b.bytes });

test('OCI layout: digests that are paths (../, absolute) are refused', async () => {
  const manifest = { mediaType: image.manifest.mediaType, size: image.manifest.size };
  await refused(await ociLayout('oci-dotdot', { ...manifest, digest: `sha256:${'../'.repeat(12)}${outside.slice(1)}/config.json` }, []), /index\.json of the archive is not an OCI image index: must be a digest/);
  await refused(await ociLayout('oci-abs', { ...manifest, digest: join(outside, 'config.json') }, []), /not an OCI image index: must be a digest/);
});

test('OCI layout: blobs that are symlinks or device nodes, or missing, are refused', async () => {
  const descriptor = { mediaType: image.manifest.mediaType, digest: image.manifest.digest, size: image.manifest.size };
  const gz = await buildLayer([{ type: 'file', path: 'hello', content: 'hi\n' }]);
  const img = buildImage([gz]);
  const d = { mediaType: img.manifest.mediaType, digest: img.manifest.digest, size: img.manifest.size };
  await refused(await ociLayout('oci-symlink', d, [blobEntry(img.manifest), { name: `blobs/sha256/${img.config.digest.slice(7)}`, symlink: join(outside, 'config.json') }]), /is not a plain file/);
  await refused(await ociLayout('oci-device', d, [blobEntry(img.manifest), blobEntry(img.config), { name: `blobs/sha256/${gz.digest.slice(7)}`, device: { major: 1, minor: 5 } }]), /is not a plain file/);
  // The config blob exists on this host's disk (outside the archive) but not in the archive.
  await refused(await ociLayout('oci-missing', descriptor, [blobEntry(image.manifest)]), new RegExp(`names "blobs/sha256/${image.config.digest.slice(7)}", which is not a file in the archive`));
  await refused(await ociLayout('oci-missing-layer', d, [blobEntry(img.manifest), blobEntry(img.config)]), new RegExp(`names "blobs/sha256/${gz.digest.slice(7)}", which is not a file in the archive`));
});

test('OCI layout: the config is validated as a pull validates it', async () => {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length }, layers: [{ mediaType: layer.mediaType, digest: layer.digest, size: layer.size }] }));
  await refused(
    await ociLayout('oci-config', { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(manifest), size: manifest.length }, [
      { name: `blobs/sha256/${sha256(manifest).slice(7)}`, bytes: manifest },
      { name: `blobs/sha256/${sha256(config).slice(7)}`, bytes: config },
      blobEntry(layer),
    ]),
    /lists 0 layer diff ids but the manifest has 1 layers/,
  );
  const good = join(fx.dir, 'good-oci.tar');
  await writeOciLayoutTar(image, good, 'good/oci:1');
  assert.equal((await importer.importTar(good)).reference, 'docker.io/good/oci:1');
});
