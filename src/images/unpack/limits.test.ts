/** Limits, decompression bombs, broken streams and unsupported input: fail fast, typed, nothing outside root. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { ErrorCodes, InvalidArgumentError } from '../../core/errors.js';
import { compressionOf } from './decompress.js';
import { CorruptLayerError, LayerLimitError, UnsupportedLayerError, type LayerUnpackError, type UnpackRule } from './errors.js';
import { DEFAULT_UNPACK_LIMITS, UnpackBudget, resolveLimits, type UnpackLimits } from './limits.js';
import { unpackLayer, unpackLayers, type LayerSource } from './unpack.js';
import { buildTar, gzipBomb, makeSandbox, snapshotTree, ustarHeader, type CountingSource, type Sandbox, type TestEntry } from './test-helpers.js';

const TAR = 'application/vnd.oci.image.layer.v1.tar';
const TGZ = 'application/vnd.oci.image.layer.v1.tar+gzip';
const MiB = 1024 * 1024;
const END = Buffer.alloc(1024);

async function inBox(run: (box: Sandbox) => Promise<void>): Promise<void> {
  const box = await makeSandbox();
  try {
    const before = await box.outside();
    await run(box);
    assert.deepEqual(await box.outside(), before, 'nothing outside the root changed');
  } finally {
    await box.cleanup();
  }
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  assert.fail('expected the unpack to fail');
}

function assertRule(err: unknown, type: abstract new (...args: never[]) => LayerUnpackError, rule: UnpackRule, entry?: string): void {
  assert.ok(err instanceof type, `expected ${type.name}, got ${String(err)}`);
  assert.equal(err.rule, rule, err.message);
  if (entry !== undefined) assert.equal(err.entryPath, entry);
}

async function diskBytes(dir: string): Promise<number> {
  let total = 0;
  for (const line of await snapshotTree(dir)) total += Number(line.split(' ')[3]);
  return total;
}

const tarOf = async (entries: TestEntry[]): Promise<Readable> => Readable.from([await buildTar(entries)]);

test('media types: tar, tar+gzip and Docker tar.gzip are read; zstd and others are refused', () => {
  assert.equal(compressionOf(TAR), 'none');
  assert.equal(compressionOf(TGZ), 'gzip');
  assert.equal(compressionOf('application/vnd.docker.image.rootfs.diff.tar.gzip'), 'gzip');
  assert.equal(compressionOf('application/vnd.oci.image.layer.nondistributable.v1.tar+gzip'), 'gzip');
  assert.throws(() => compressionOf('application/vnd.oci.image.layer.v1.tar+zstd'), (err: unknown) => {
    assertRule(err, UnsupportedLayerError, 'unsupported-compression');
    assert.match((err as Error).message, /unsupported compression: zstd \(Node 20 has no zstd decoder\)/);
    assert.equal((err as UnsupportedLayerError).code, ErrorCodes.imageUnsupported);
    return true;
  });
  for (const bad of ['application/vnd.oci.image.config.v1+json', 'application/vnd.oci.image.layer.v1.tar+gzip+encrypted']) {
    assert.throws(() => compressionOf(bad), (err: unknown) => (assertRule(err, UnsupportedLayerError, 'unsupported-media-type'), true));
  }
});

test('zstd, by media type or by magic number, is refused before anything is read or written', async () => {
  await inBox(async (box) => {
    const source = gzipBomb(Buffer.alloc(0), 4);
    assertRule(await failure(unpackLayer(box.root, source, { mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' })), UnsupportedLayerError, 'unsupported-compression');
    assert.equal(source.consumed, 0);
    const zstdBlob = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), Buffer.alloc(100)]);
    assertRule(await failure(unpackLayer(box.root, Readable.from([zstdBlob]), { mediaType: TAR })), UnsupportedLayerError, 'unsupported-compression');
    const layers: LayerSource[] = [
      { mediaType: TAR, open: () => tarOf([{ name: 'first', data: 'x' }]) },
      { mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', open: () => assert.fail('not opened') },
    ];
    assertRule(await failure(unpackLayers(box.root, layers)), UnsupportedLayerError, 'unsupported-compression');
    assert.deepEqual(await readdir(box.root), [], 'not even the first layer was applied');
  });
});

test('a file whose declared size exceeds the entry limit is refused before it is created', async () => {
  await inBox(async (box) => {
    const err = await failure(unpackLayer(box.root, await tarOf([{ name: 'small', data: 'ok' }, { name: 'big', data: Buffer.alloc(2000) }]), { mediaType: TAR, limits: { maxEntryBytes: 1000 } }));
    assertRule(err, LayerLimitError, 'max-entry-bytes', 'big');
    assert.equal((err as LayerLimitError).code, ErrorCodes.imageLimitExceeded);
    assert.match((err as Error).message, /layer entry "big": declared size 2000 bytes exceeds the per-entry limit of 1000 bytes \[max-entry-bytes\]/);
    assert.deepEqual(await readdir(box.root), ['small']);
  });
});

test('total bytes and entry counts are limited across the layers of one budget', async () => {
  await inBox(async (box) => {
    const layers: LayerSource[] = [
      { mediaType: TAR, open: () => tarOf([{ name: 'a', data: Buffer.alloc(600) }, { name: 'b', data: Buffer.alloc(600) }]) },
      { mediaType: TAR, open: () => tarOf([{ name: 'c', data: Buffer.alloc(200) }, { name: 'd', data: Buffer.alloc(600) }]) },
    ];
    assertRule(await failure(unpackLayers(box.root, layers, { limits: { maxTotalBytes: 1500 } })), LayerLimitError, 'max-total-bytes', 'd');
    assert.deepEqual((await readdir(box.root)).sort(), ['a', 'b', 'c']);
  });
  await inBox(async (box) => {
    const budget = new UnpackBudget();
    const entries = Array.from({ length: 4 }, (_, i): TestEntry => ({ name: `f${i}`, data: 'x' }));
    await unpackLayer(box.root, await tarOf(entries), { mediaType: TAR, limits: { maxEntries: 6 }, budget });
    assertRule(await failure(unpackLayer(box.root, await tarOf(entries.map((e) => ({ ...e, name: `g${e.name}` }))), { mediaType: TAR, limits: { maxEntries: 6 }, budget })), LayerLimitError, 'max-entries', 'gf2');
    assert.equal(budget.entries, 7);
  });
});

test('limits: defaults are documented values, partial overrides merge, nonsense is refused', () => {
  assert.deepEqual(resolveLimits(), { maxTotalBytes: 8 * 1024 * MiB, maxEntries: 500_000 });
  assert.deepEqual(resolveLimits({ maxEntries: 10 }), { ...DEFAULT_UNPACK_LIMITS, maxEntries: 10 });
  assert.throws(() => resolveLimits({ maxTotalBytes: -1 } as Partial<UnpackLimits>), InvalidArgumentError);
});

test('a gzip bomb (1 GiB file in ~1 MB) fails at its header, after reading a sliver of the input', async () => {
  await inBox(async (box) => {
    const bomb: CountingSource = gzipBomb(ustarHeader('zeros', 1024 * MiB), 1024);
    assert.ok(bomb.total < 2 * MiB, `bomb is ${bomb.total} bytes compressed`);
    const started = Date.now();
    const err = await failure(unpackLayer(box.root, bomb, { mediaType: TGZ, limits: { maxTotalBytes: 64 * MiB } }));
    assertRule(err, LayerLimitError, 'max-entry-bytes', 'zeros');
    assert.ok(bomb.consumed < bomb.total / 10, `read ${bomb.consumed} of ${bomb.total} compressed bytes`);
    assert.ok(Date.now() - started < 5000);
    assert.deepEqual(await readdir(box.root), []);
  });
});

test('a bomb of bare zeros (no tar entries at all) stops on the tar-overhead rule, early', async () => {
  await inBox(async (box) => {
    const bomb = gzipBomb(Buffer.alloc(0), 1024);
    assertRule(await failure(unpackLayer(box.root, bomb, { mediaType: TGZ })), LayerLimitError, 'tar-overhead');
    assert.ok(bomb.consumed < bomb.total / 10, `read ${bomb.consumed} of ${bomb.total} compressed bytes`);
  });
});

test('many honest-looking 8 MiB zero files stop at the total limit with less than the limit on disk', async () => {
  await inBox(async (box) => {
    const members: Buffer[] = [];
    const eightMiB = gzipSync(Buffer.alloc(8 * MiB), { level: 9 });
    for (let i = 0; i < 20; i++) members.push(gzipSync(ustarHeader(`f${i}`, 8 * MiB)), eightMiB);
    members.push(gzipSync(END));
    const err = await failure(unpackLayer(box.root, Readable.from(members), { mediaType: TGZ, limits: { maxTotalBytes: 64 * MiB } }));
    assertRule(err, LayerLimitError, 'max-total-bytes', 'f8');
    assert.equal((await readdir(box.root)).length, 8);
    assert.ok((await diskBytes(box.root)) <= 64 * MiB);
  });
});

test('the compression-ratio limit is off by default and enforced when set', async () => {
  const layer = (): Readable => Readable.from([gzipSync(ustarHeader('z', 32 * MiB)), gzipSync(Buffer.alloc(32 * MiB)), gzipSync(END)]);
  await inBox(async (box) => {
    await unpackLayer(box.root, layer(), { mediaType: TGZ });
    assert.equal((await lstat(join(box.root, 'z'))).size, 32 * MiB);
  });
  await inBox(async (box) => {
    assertRule(await failure(unpackLayer(box.root, layer(), { mediaType: TGZ, limits: { maxCompressionRatio: 100 } })), LayerLimitError, 'compression-ratio', 'z');
  });
});

test('truncated or garbled gzip and tar streams fail with a corrupt-layer error', async () => {
  const entries: TestEntry[] = [{ name: 'a', data: Buffer.alloc(5000, 1) }, { name: 'b', data: 'b' }];
  const plain = await buildTar(entries);
  const gz = gzipSync(plain);
  const flipped = Buffer.from(gz);
  flipped[Math.floor(gz.length / 2)] ^= 0xff;
  const cases: [string, Buffer, UnpackRule][] = [
    ['truncated gzip', gz.subarray(0, gz.length - 12), 'corrupt-gzip'],
    ['gzip with a flipped byte', flipped, 'corrupt-gzip'],
    ['tar cut inside an entry', plain.subarray(0, 512 + 100), 'corrupt-tar'],
    ['not a tar at all', Buffer.from('hello, this is not a tar archive '.repeat(40)), 'corrupt-tar'],
  ];
  for (const [what, blob, rule] of cases) {
    await inBox(async (box) => {
      const err = await failure(unpackLayer(box.root, Readable.from([blob]), { mediaType: TGZ }));
      assertRule(err, CorruptLayerError, rule);
      assert.equal((err as CorruptLayerError).code, 'HC_IMAGE_CORRUPT_LAYER', what);
    });
  }
});

test('unknown entry types (GNU sparse) are refused, naming the entry', async () => {
  await inBox(async (box) => {
    const blob = Buffer.concat([ustarHeader('sparse', 0, 'S'), END]);
    assertRule(await failure(unpackLayer(box.root, Readable.from([blob]), { mediaType: TAR })), UnsupportedLayerError, 'unsupported-entry-type', 'sparse');
  });
});

test('an empty blob is an empty layer', async () => {
  await inBox(async (box) => {
    assert.deepEqual(await unpackLayer(box.root, Readable.from([]), { mediaType: TAR }), { entries: 0, bytes: 0, whiteouts: 0 });
  });
});
