import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryNotFoundError } from './errors.js';
import { normalisePlatform, parsePlatform, selectPlatform } from './manifests.js';
import { imageConfigSchema, imageIndexSchema, isForeignLayer, layerCompression, MediaTypes, type ImageIndex } from './media-types.js';

const d = (n: string) => `sha256:${n.repeat(64)}`;
const index: ImageIndex = {
  schemaVersion: 2,
  manifests: [
    { mediaType: MediaTypes.ociManifest, digest: d('1'), size: 10, platform: { os: 'linux', architecture: 'amd64' } },
    { mediaType: MediaTypes.ociManifest, digest: d('2'), size: 10, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    { mediaType: MediaTypes.ociManifest, digest: d('3'), size: 10, platform: { os: 'linux', architecture: 'arm', variant: 'v6' } },
    { mediaType: MediaTypes.ociManifest, digest: d('4'), size: 10, platform: { os: 'unknown', architecture: 'unknown' } },
  ],
};

test('platform selection normalises architecture names and variants', () => {
  assert.equal(selectPlatform(index, { os: 'linux', architecture: 'amd64' }, 'x').digest, d('1'));
  assert.equal(selectPlatform(index, { os: 'linux', architecture: 'x86_64' }, 'x').digest, d('1'));
  assert.equal(selectPlatform(index, { os: 'linux', architecture: 'aarch64' }, 'x').digest, d('2'));
  assert.equal(selectPlatform(index, { os: 'linux', architecture: 'arm64', variant: 'v8' }, 'x').digest, d('2'));
  assert.equal(selectPlatform(index, { os: 'linux', architecture: 'arm', variant: 'v6' }, 'x').digest, d('3'));
  assert.deepEqual(normalisePlatform({ os: 'Linux', architecture: 'armhf' }), { os: 'linux', architecture: 'arm', variant: 'v7' });
  assert.deepEqual(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64' });
  assert.deepEqual(parsePlatform('linux/x86_64'), { os: 'linux', architecture: 'amd64' });
  assert.throws(() => parsePlatform('linux'), /expected os\/architecture/);
});

test('a missing platform is a not-found error listing the real platforms (not attestations)', () => {
  assert.throws(
    () => selectPlatform(index, { os: 'linux', architecture: 's390x' }, 'reg/x:1'),
    (err: unknown) =>
      err instanceof RegistryNotFoundError &&
      err.code === 'HC_IMAGE_NOT_FOUND' &&
      err.message === 'reg/x:1 has no image for linux/s390x; available: linux/amd64, linux/arm64/v8, linux/arm/v6' &&
      err.details.length === 3,
  );
  assert.throws(() => selectPlatform(index, { os: 'linux', architecture: 'arm', variant: 'v7' }, 'x'), /no image for linux\/arm\/v7/);
});

test('media type helpers and schemas', () => {
  assert.equal(layerCompression(MediaTypes.ociLayerZstd), 'zstd');
  assert.equal(layerCompression(MediaTypes.dockerLayerGzip), 'gzip');
  assert.equal(layerCompression(MediaTypes.ociLayer), 'none');
  assert.equal(layerCompression('application/vnd.example.thing'), undefined);
  assert.equal(isForeignLayer(MediaTypes.dockerForeignLayerGzip), true);
  assert.equal(isForeignLayer(MediaTypes.ociLayerNondistributableGzip), true);
  assert.equal(isForeignLayer(MediaTypes.ociLayerGzip), false);
  assert.equal(imageIndexSchema.safeParse({ schemaVersion: 2, manifests: [{ mediaType: 'x', digest: 'sha256:bad', size: 1 }] }).success, false);
  const config = imageConfigSchema.parse({ os: 'linux', architecture: 'amd64', config: { Env: null, Cmd: ['sh'] }, rootfs: { type: 'layers', diff_ids: [d('a')] }, extra: 1 });
  assert.deepEqual(config.config?.Cmd, ['sh']);
  assert.equal((config as Record<string, unknown>).extra, 1, 'unknown fields are kept');
});
