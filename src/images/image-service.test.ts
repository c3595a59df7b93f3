/**
 * The image service against a real docker-registry on 127.0.0.1: prune racing a pull or a VM disk
 * creation (made deterministic by holding a download at a gate), and the size and free-space limits
 * a pull checks before it downloads anything.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { RegistryClient } from './registry/client.js';
import { parseReference } from './registry/reference.js';
import { createRegistrySource } from './registry-source.js';
import { startRegistry, type RegistryProcess } from './registry/testing/registry-process.js';
import type { VmDisk } from '../core/image.js';
import type { ImageSource } from './image-source.js';
import { imageServiceFixture, type ImageServiceFixture } from './testing/image-service-fixture.js';
import { buildImage, buildLayer, type BuiltImage } from './testing/oci-builder.js';

let registry: RegistryProcess;
let client: RegistryClient;
let image: BuiltImage;
let ref: string;

before(async () => {
  registry = await startRegistry();
  client = new RegistryClient({});
  image = buildImage([await buildLayer([{ type: 'file', path: 'hello', content: 'hi\n' }]), await buildLayer([{ type: 'file', path: 'two', content: '2\n' }])]);
  ref = `${registry.host}/hc/race:1`;
  const r = parseReference(ref);
  for (const b of [...image.layers, image.config]) await client.pushBlob(r, b.digest, b.bytes);
  await client.pushManifest(r, image.manifest.mediaType, image.manifest.bytes);
});

after(async () => {
  await client?.close();
  await registry?.stop();
});

/** A gate a download waits at until the test opens it; `reached` resolves once one waits there. */
function gate(): { reached: Promise<void>; open: () => void; source: (inner: ImageSource) => ImageSource } {
  let arrive!: () => void;
  let open!: () => void;
  const reached = new Promise<void>((r) => (arrive = r));
  const opened = new Promise<void>((r) => (open = r));
  return {
    reached,
    open,
    source: (inner) => ({
      resolve: (reference, platform) => inner.resolve(reference, platform),
      downloadBlob: async (reference, digest, dest, options) => {
        arrive();
        await opened;
        return inner.downloadBlob(reference, digest, dest, options);
      },
    }),
  };
}

function blobsOf(fx: ImageServiceFixture): string[] {
  const dir = join(fx.dir, 'images', 'blobs', 'sha256');
  return existsSync(dir) ? readdirSync(dir).filter((n) => /^[0-9a-f]{64}$/.test(n)) : [];
}

const allDigests = () => [image.manifest, image.config, ...image.layers].map((b) => b.digest.slice(7)).sort();

/** VM names by the image digest they use, as the VM store would answer `usersOf`. */
type Users = Map<string, string[]>;

async function withService(fn: (fx: ImageServiceFixture, g: ReturnType<typeof gate>, users: Users) => Promise<void>, options: Parameters<typeof imageServiceFixture>[0] = {}): Promise<void> {
  const g = gate();
  const users: Users = new Map();
  const fx = await imageServiceFixture({ registry: g.source(createRegistrySource({ insecureRegistries: [] })), usersOf: (digest) => users.get(digest) ?? [], ...options });
  try {
    await fn(fx, g, users);
  } finally {
    g.open(); // a failed assertion must not leave a download waiting at the gate
    fx.close();
  }
}

test('prune waits for a pull in flight and keeps what it stored', () =>
  withService(async (fx, g) => {
    const pull = fx.images.pull(ref);
    await g.reached; // manifest and config are stored, no record refers to them yet
    let pruned = false;
    const prune = fx.images.prune(true).then((r) => ((pruned = true), r));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(pruned, false, 'prune must not run while the pull is in flight');
    g.open();
    const pulled = await pull;
    const result = await prune;
    assert.equal(pulled.digest, image.manifest.digest);
    // prune --all ran after the pull: the image had no VM, so prune removed it whole, consistently.
    assert.deepEqual(result.deleted.filter((d) => !d.startsWith('sha256:') && !d.startsWith('block')), [pulled.reference]);
    assert.deepEqual(blobsOf(fx), []);
    const again = await fx.images.pull(ref);
    assert.deepEqual(blobsOf(fx), allDigests());
    assert.ok(existsSync(fx.images.blockImagePath(again)));
  }));

test('prune (without --all) during a pull leaves the pulled image complete', () =>
  withService(async (fx, g) => {
    const pull = fx.images.pull(ref);
    await g.reached;
    const prune = fx.images.prune(false);
    g.open();
    const pulled = await pull;
    await prune;
    assert.deepEqual(blobsOf(fx), allDigests(), 'every blob of the pulled image is still there');
    assert.ok(existsSync(fx.images.blockImagePath(pulled)));
  }));

test('prune --all waits for a VM disk being created over a new image, and then keeps it', () =>
  withService(async (fx, g, users) => {
    const stateDir = join(fx.dir, 'vm');
    mkdirSync(stateDir);
    let disks: VmDisk[] = [];
    const created = fx.images.provision(ref, stateDir, { formats: ['raw', 'qcow2'], sizeMib: 64, workload: true }, (img, d) => {
      users.set(img.digest, ['vm1']);
      disks = d;
    });
    await g.reached;
    const prune = fx.images.prune(true);
    g.open();
    const pulled = await created;
    const { deleted } = await prune;
    assert.deepEqual(deleted, [], 'the image is in use by the new VM');
    assert.equal(disks[0]?.path, fx.images.blockImagePath(pulled));
    assert.ok(existsSync(disks[0]!.path) && existsSync(disks[1]!.path));
    assert.deepEqual(blobsOf(fx), allDigests());
  }));

test('a layer larger than the blob cap is refused before anything is downloaded', () =>
  withService(
    async (fx, g) => {
      g.open();
      const largest = Math.max(...image.layers.map((l) => l.size));
      await assert.rejects(fx.images.pull(ref), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'HC_IMAGE_LIMIT_EXCEEDED');
        assert.match(err.message, new RegExp(`layer sha256:[0-9a-f]{64} declares ${largest} bytes, more than the ${largest - 1} allowed for one blob`));
        return true;
      });
      assert.deepEqual(blobsOf(fx), [], 'nothing is kept');
      assert.deepEqual(fx.images.list(), []);
    },
    { limits: { maxBlobBytes: Math.max(...image.layers.map((l) => l.size)) - 1 } },
  ));

test('an image larger than the image cap is refused', () =>
  withService(
    async (fx, g) => {
      g.open();
      await assert.rejects(fx.images.pull(ref), /its layers declare \d+ bytes in all, more than the 10 allowed for an image/);
      assert.deepEqual(blobsOf(fx), []);
    },
    { limits: { maxImageBytes: 10 } },
  ));

test('a pull that would not fit in the free space is refused up front', () =>
  withService(
    async (fx, g) => {
      g.open();
      await assert.rejects(fx.images.pull(ref), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'HC_IMAGE_LIMIT_EXCEEDED');
        assert.match(err.message, /needs about [\d.]+ MiB of free space in .*images .* but only [\d.]+ MiB is free/);
        return true;
      });
      assert.deepEqual(blobsOf(fx), []);
    },
    // An absurd factor makes any real disk too small.
    { limits: { freeSpaceFactor: 1e12 } },
  ));
