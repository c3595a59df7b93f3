/**
 * Hostile layers. Each test unpacks into `root` with a sentinel directory beside it and checks both
 * the typed error (entry + rule) and that nothing outside `root` changed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { ErrorCodes } from '../../core/errors.js';
import { CorruptLayerError, LayerUnpackError, UnsafeLayerError, type UnpackRule } from './errors.js';
import { unpackLayer } from './unpack.js';
import { buildTar, makeSandbox, type Sandbox, type TestEntry } from './test-helpers.js';

const TAR = 'application/vnd.oci.image.layer.v1.tar';

/**
 * Unpacks the layers (built from the sandbox, so they can name its host paths) into a fresh
 * sandbox, asserts nothing outside the root changed, then hands the first error (or undefined) to `check`.
 */
async function attempt(layers: (box: Sandbox) => TestEntry[][], check: (box: Sandbox, err: unknown) => Promise<void>): Promise<void> {
  const box = await makeSandbox();
  try {
    const before = await box.outside();
    let failure: unknown;
    try {
      for (const layer of layers(box)) await unpackLayer(box.root, Readable.from([await buildTar(layer)]), { mediaType: TAR });
    } catch (err) {
      failure = err;
    }
    assert.deepEqual(await box.outside(), before, 'nothing outside the root changed');
    assert.equal(await readFile(join(box.sentinel, 'secret'), 'utf8'), 'do not touch\n');
    await check(box, failure);
  } finally {
    await box.cleanup();
  }
}

function assertRule(err: unknown, type: abstract new (...args: never[]) => LayerUnpackError, rule: UnpackRule, entry: string): void {
  assert.ok(err instanceof type, `expected ${type.name}, got ${String(err)}`);
  assert.equal(err.rule, rule);
  assert.equal(err.entryPath, entry);
  assert.ok(err.message.includes(JSON.stringify(entry)) && err.message.includes(`[${rule}]`), err.message);
}

test('a name with .. that climbs out is refused, naming the entry and the rule', async () => {
  for (const name of ['../escape', 'a/../../escape', '../sentinel/secret', './../../../../tmp/escape']) {
    await attempt(() => [[{ name: 'ok', data: 'fine' }, { name, data: 'pwned' }]], async (box, err) => {
      assertRule(err, UnsafeLayerError, 'path-escape', name);
      assert.equal((err as UnsafeLayerError).code, ErrorCodes.imageUnsafeLayer);
      assert.deepEqual(await readdir(box.root), ['ok']);
    });
  }
});

test('absolute names are rooted at the root directory, as Docker does', async () => {
  await attempt((box) => [[{ name: '/etc/x', data: 'inside' }, { name: join(box.sentinel, 'secret'), data: 'pwned' }]], async (box, err) => {
    assert.equal(err, undefined);
    assert.equal(await readFile(join(box.root, 'etc/x'), 'utf8'), 'inside');
    assert.equal(await readFile(join(box.root, box.sentinel, 'secret'), 'utf8'), 'pwned');
  });
});

test('a symlink to / or ../../.. followed by an entry below it stays inside the root', async () => {
  for (const target of ['/', '../../..', '../../../../../../../..']) {
    await attempt(() => [[{ name: 'a', type: 'symlink', linkname: target }, { name: 'a/etc/passwd', data: 'pwned' }]], async (box, err) => {
      assert.equal(err, undefined);
      assert.equal(await readFile(join(box.root, 'etc/passwd'), 'utf8'), 'pwned');
      assert.equal(await readlink(join(box.root, 'a')), target, 'the link target is stored verbatim');
    });
  }
});

test('symlinks planted by a lower layer (host path of the sentinel, ../sentinel) cannot lead writes out', async () => {
  await attempt(
    (box) => [
      [
        { name: 'host', type: 'symlink', linkname: box.sentinel },
        { name: 'rel', type: 'symlink', linkname: '../sentinel' },
        { name: 'top', type: 'symlink', linkname: dirname(box.base) },
      ],
      [
        { name: 'host/secret', data: 'pwned' },
        { name: 'rel/etc/passwd', data: 'pwned' },
        { name: 'top/new-dir/', type: 'directory', mode: 0o777 },
        { name: 'host/fifo', type: 'fifo' },
      ],
    ],
    async (box, err) => {
      assert.equal(err, undefined);
      assert.equal(await readFile(join(box.root, box.sentinel, 'secret'), 'utf8'), 'pwned');
      assert.equal(await readFile(join(box.root, 'sentinel/etc/passwd'), 'utf8'), 'pwned');
      assert.ok((await lstat(join(box.root, dirname(box.base), 'new-dir'))).isDirectory());
      assert.ok((await lstat(join(box.root, box.sentinel, 'fifo'))).isFIFO());
    },
  );
});

test('an entry replacing a lower symlink to the sentinel replaces the link, not the file behind it', async () => {
  await attempt(
    (box) => [[{ name: 'passwd', type: 'symlink', linkname: join(box.sentinel, 'etc/passwd') }], [{ name: 'passwd', data: 'pwned', mode: 0o777 }]],
    async (box, err) => {
      assert.equal(err, undefined);
      assert.ok((await lstat(join(box.root, 'passwd'))).isFile());
    },
  );
});

test('a hardlink to ../../etc/passwd is refused', async () => {
  for (const linkname of ['../../etc/passwd', '../sentinel/secret']) {
    await attempt(() => [[{ name: 'h', type: 'link', linkname }]], async (box, err) => {
      assertRule(err, UnsafeLayerError, 'hardlink-escape', 'h');
      assert.deepEqual(await readdir(box.root), []);
    });
  }
});

test('a hardlink through a symlink that escapes resolves inside the root and fails when nothing is there', async () => {
  for (const linkname of ['esc/secret', 'up/sentinel/secret']) {
    await attempt(
      (box) => [[
        { name: 'esc', type: 'symlink', linkname: box.sentinel },
        { name: 'up', type: 'symlink', linkname: '../../../..' },
        { name: 'h', type: 'link', linkname },
      ]],
      async (box, err) => {
        assertRule(err, CorruptLayerError, 'hardlink-target-missing', 'h');
        assert.deepEqual((await readdir(box.root)).sort(), ['esc', 'up']);
      },
    );
  }
  // Once the target exists inside the root, the same kind of link name links to that file.
  await attempt(
    () => [[{ name: 'etc/passwd', data: 'inner' }, { name: 'up', type: 'symlink', linkname: '../../..' }, { name: 'h', type: 'link', linkname: 'up/etc/passwd' }]],
    async (box, err) => {
      assert.equal(err, undefined);
      assert.equal((await lstat(join(box.root, 'h'))).ino, (await lstat(join(box.root, 'etc/passwd'))).ino);
    },
  );
});

test('a hardlink to a directory is refused', async () => {
  await attempt(() => [[{ name: 'd/', type: 'directory' }, { name: 'h', type: 'link', linkname: 'd' }]], async (_box, err) => {
    assertRule(err, UnsafeLayerError, 'hardlink-target-directory', 'h');
  });
});

test('whiteouts cannot delete outside the root', async () => {
  await attempt(() => [[{ name: '../.wh.sentinel' }]], async (_box, err) => {
    assertRule(err, UnsafeLayerError, 'path-escape', '../.wh.sentinel');
  });
  await attempt(() => [[{ name: 'x/', type: 'directory' }, { name: 'x/.wh...' }]], async (_box, err) => {
    assertRule(err, UnsafeLayerError, 'whiteout-name', 'x/.wh...');
  });
  // Through symlinks to the sentinel's host path or to `..`: resolved inside the root, nothing outside goes.
  await attempt(
    (box) => [
      [{ name: 'host', type: 'symlink', linkname: box.sentinel }, { name: 'up', type: 'symlink', linkname: '..' }, { name: 'keep', data: 'k' }],
      [{ name: 'host/.wh.secret' }, { name: 'up/.wh.sentinel' }, { name: 'up/sentinel/.wh.secret' }, { name: 'up/.wh..wh..opq' }],
    ],
    async (box, err) => {
      assert.equal(err, undefined);
      // `up/.wh..wh..opq` made the root itself opaque: every lower entry went, inside the root only.
      assert.deepEqual(await readdir(box.root), []);
    },
  );
});

test('symlink loops are refused with a clear rule', async () => {
  await attempt(
    () => [[{ name: 'l1', type: 'symlink', linkname: 'l2' }, { name: 'l2', type: 'symlink', linkname: 'l1' }, { name: 'l1/x', data: 'x' }]],
    async (_box, err) => {
      assertRule(err, UnsafeLayerError, 'symlink-loop', 'l1/x');
    },
  );
});
