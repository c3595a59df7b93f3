import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootAssetPaths, defaultBootDir, parseAptCandidate, parseKernelDependency, readBootManifest, type BootManifest } from './boot-assets.js';

const policy = `linux-image-cloud-amd64:
  Installed: (none)
  Candidate: 6.1.192-2
  Version table:
     6.1.192-2 500
        500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
`;

test('parseAptCandidate reads the candidate version; none when apt has no lists', () => {
  assert.equal(parseAptCandidate(policy), '6.1.192-2');
  assert.equal(parseAptCandidate('foo:\n  Installed: (none)\n  Candidate: (none)\n'), undefined);
  assert.equal(parseAptCandidate(''), undefined);
});

test('parseKernelDependency finds the pinned linux-image package of the metapackage', () => {
  const show = 'Package: linux-image-cloud-amd64\nVersion: 6.1.192-2\nDepends: linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)\nDescription: x\n';
  assert.deepEqual(parseKernelDependency(show), { name: 'linux-image-6.1.0-56-cloud-amd64', version: '6.1.192-2' });
  assert.deepEqual(parseKernelDependency('Depends: initramfs-tools, linux-image-6.1.0-9-cloud-amd64 | linux-image-6.1.0-9-cloud-amd64-unsigned\n'), {
    name: 'linux-image-6.1.0-9-cloud-amd64',
  });
  assert.deepEqual(parseKernelDependency('Depends: linux-image-6.1.0-9-cloud-amd64 (>= 6.1)\n'), { name: 'linux-image-6.1.0-9-cloud-amd64' });
  assert.equal(parseKernelDependency('Package: x\n'), undefined);
  assert.equal(parseKernelDependency('Depends: libc6 (>= 2.36)\n'), undefined);
});

test('boot dir defaults to $HYPERCORE_BOOT_DIR, then /var/lib/hypercore/boot', () => {
  assert.equal(defaultBootDir({ HYPERCORE_BOOT_DIR: '/x/boot' }), '/x/boot');
  assert.equal(defaultBootDir({}), '/var/lib/hypercore/boot');
  assert.deepEqual(bootAssetPaths('/b'), { kernel: '/b/vmlinuz', kernelElf: '/b/vmlinux', initrd: '/b/initrd.img', manifest: '/b/manifest.json' });
});

test('readBootManifest returns a well-formed manifest and undefined for missing or malformed ones', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-boot-'));
  try {
    assert.equal(await readBootManifest(dir), undefined);
    const manifest: BootManifest = {
      kernelVersion: '6.1.0-56-cloud-amd64',
      package: 'linux-image-6.1.0-56-cloud-amd64',
      packageVersion: '6.1.192-2',
      modules: ['virtio_ring', 'virtio'],
      builtAt: '2025-01-01T00:00:00.000Z',
      initrdSha256: 'ab',
      stage1Digest: 'cd',
    };
    await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));
    assert.deepEqual(await readBootManifest(dir), manifest);
    await writeFile(join(dir, 'manifest.json'), JSON.stringify({ ...manifest, modules: 'virtio' }));
    assert.equal(await readBootManifest(dir), undefined);
    await writeFile(join(dir, 'manifest.json'), '{not json');
    assert.equal(await readBootManifest(dir), undefined);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
