import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, readFile, readdir, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createReadStream } from 'node:fs';
import { CorruptLayerError } from './errors.js';
import { UnpackBudget } from './limits.js';
import { unpackLayer, unpackLayers } from './unpack.js';
import { T0, buildTar, buildTarGz, major, makeSandbox, minor, type TestEntry } from './test-helpers.js';

const TAR = 'application/vnd.oci.image.layer.v1.tar';
const TGZ = 'application/vnd.oci.image.layer.v1.tar+gzip';
const DOCKER_TGZ = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
const LONG = `deep/${'x'.repeat(120)}/file`;

const layer1: TestEntry[] = [
  { name: './', type: 'directory', mtime: T0 },
  { name: 'etc/', type: 'directory', mtime: T0 + 1 },
  { name: 'etc/hostname', data: 'one\n', mtime: T0 + 2 },
  { name: 'etc/remove-me', data: 'bye\n' },
  { name: 'etc/alt', type: 'symlink', linkname: '/usr/bin/tool', mtime: T0 + 3 },
  { name: 'usr/', type: 'directory' },
  { name: 'usr/bin/', type: 'directory' },
  { name: 'usr/bin/tool', mode: 0o4755, data: '#!tool\n', mtime: T0 + 4 },
  { name: 'usr/bin/tool2', type: 'link', linkname: 'usr/bin/tool' },
  { name: 'usr/bin/sg', mode: 0o2755, gid: 50, data: 'sg\n' },
  { name: 'bin', type: 'symlink', linkname: 'usr/bin' },
  { name: 'tmp/', type: 'directory', mode: 0o1777 },
  { name: 'dev/', type: 'directory' },
  { name: 'dev/null', type: 'character-device', mode: 0o666, devmajor: 1, devminor: 3 },
  { name: 'dev/loop0', type: 'block-device', mode: 0o660, gid: 6, devmajor: 7, devminor: 0 },
  { name: 'run/fifo', type: 'fifo', mode: 0o600 }, // no `run/` entry: the parent is implied
  { name: 'home/', type: 'directory' },
  { name: 'home/big/', type: 'directory', mode: 0o700, uid: 3_000_000, gid: 3_000_001, pax: { uid: '3000000', gid: '3000001' } },
  { name: 'opt/', type: 'directory' },
  { name: 'opt/app/', type: 'directory', mode: 0o750, uid: 1000, gid: 1000 },
  { name: 'opt/app/data.txt', mode: 0o640, uid: 1000, gid: 1000, data: 'data\n' },
  { name: 'srv', data: 'a file, a directory later\n' },
  { name: 'var/', type: 'directory' },
  { name: 'var/cache/', type: 'directory' },
  { name: 'var/cache/apt/pkg.bin', data: Buffer.alloc(3000, 7) },
  { name: 'usr/share/', type: 'directory' },
  { name: 'usr/share/locale/', type: 'directory' },
  { name: 'usr/share/locale/en/x', data: 'en\n' },
  { name: 'usr/share/locale/fr/y', data: 'fr\n' },
  { name: 'a/b/c/d.txt', data: 'implicit parents\n' },
  { name: LONG, data: 'long name via PAX\n' },
];

const layer2: TestEntry[] = [
  { name: 'etc/', type: 'directory', mtime: T0 + 10 },
  { name: 'etc/.wh.remove-me' },
  { name: 'etc/hostname', data: 'two\n', mode: 0o600, mtime: T0 + 11 },
  { name: 'var/', type: 'directory', mtime: T0 + 12 },
  { name: 'var/.wh.cache' },
  { name: 'usr/share/locale/', type: 'directory', mode: 0o751, mtime: T0 + 13 },
  { name: 'usr/share/locale/de/z', data: 'de\n' }, // before the opaque marker: must survive it
  { name: 'usr/share/locale/.wh..wh..opq' },
  { name: 'usr/share/locale/it/w', data: 'it\n' },
  { name: 'bin/newtool', mode: 0o755, data: 'new\n' }, // parent is a symlink from layer 1: resolved inside root
  { name: 'opt/app', type: 'symlink', linkname: '/srv/www' }, // a directory replaced by a symlink
  { name: 'srv/', type: 'directory', mtime: T0 + 14 }, // a file replaced by a directory
  { name: 'srv/www', data: 'www\n' },
];

/** `type mode uid:gid mtime detail` per path; `*` in an expected mtime means "not from the layer" (implied or modified directory). */
async function describeTree(root: string, prefix = ''): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const name of (await readdir(join(root, prefix))).sort()) {
    const rel = prefix ? `${prefix}/${name}` : name;
    const path = join(root, rel);
    const st = await lstat(path);
    const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
    const head = `${st.uid}:${st.gid} ${Math.floor(st.mtimeMs / 1000)}`;
    if (st.isDirectory()) {
      out.set(rel, `dir ${mode} ${head}`);
      for (const [k, v] of await describeTree(root, rel)) out.set(k, v);
    } else if (st.isFile()) out.set(rel, `file ${mode} ${head} ${JSON.stringify(await readFile(path, 'latin1'))}`);
    else if (st.isSymbolicLink()) out.set(rel, `symlink ${head} -> ${await readlink(path)}`);
    else if (st.isCharacterDevice()) out.set(rel, `char ${mode} ${head} ${major(st.rdev)}:${minor(st.rdev)}`);
    else if (st.isBlockDevice()) out.set(rel, `block ${mode} ${head} ${major(st.rdev)}:${minor(st.rdev)}`);
    else if (st.isFIFO()) out.set(rel, `fifo ${mode} ${head}`);
  }
  return out;
}

function assertTree(actual: Map<string, string>, expected: Record<string, string>): void {
  assert.deepEqual([...actual.keys()].sort(), Object.keys(expected).sort(), 'the set of paths');
  for (const [path, want] of Object.entries(expected)) {
    const got = actual.get(path)!.split(' ');
    const wanted = want.split(' ');
    if (wanted[3] === '*') got[3] = '*';
    assert.equal(got.join(' '), wanted.join(' '), path);
  }
}

test('two layers: files, dirs, links, devices, setuid, whiteouts, an opaque dir and replacements give the exact tree', async () => {
  const box = await makeSandbox();
  try {
    const outsideBefore = await box.outside();
    const s1 = await unpackLayer(box.root, Readable.from(await buildTarGz(layer1)), { mediaType: TGZ });
    assert.deepEqual(s1, { entries: layer1.length, bytes: 4 + 4 + 7 + 3 + 5 + 26 + 3000 + 3 + 3 + 17 + 18, whiteouts: 0 });
    const tool1 = await lstat(join(box.root, 'usr/bin/tool'));
    const s2 = await unpackLayer(box.root, Readable.from([await buildTar(layer2)]), { mediaType: TAR });
    assert.deepEqual(s2, { entries: layer2.length, bytes: 4 + 3 + 3 + 4 + 4, whiteouts: 3 });

    const d = 'dir 0755 0:0';
    assertTree(await describeTree(box.root), {
      a: `${d} *`,
      'a/b': `${d} *`,
      'a/b/c': `${d} *`,
      'a/b/c/d.txt': `file 0644 0:0 ${T0} "implicit parents\\n"`,
      bin: `symlink 0:0 ${T0} -> usr/bin`,
      deep: `${d} *`,
      [LONG.slice(0, -5)]: `${d} *`,
      [LONG]: `file 0644 0:0 ${T0} "long name via PAX\\n"`,
      dev: `${d} ${T0}`,
      'dev/loop0': `block 0660 0:6 ${T0} 7:0`,
      'dev/null': `char 0666 0:0 ${T0} 1:3`,
      etc: `${d} ${T0 + 10}`,
      'etc/alt': `symlink 0:0 ${T0 + 3} -> /usr/bin/tool`,
      'etc/hostname': `file 0600 0:0 ${T0 + 11} "two\\n"`,
      home: `${d} ${T0}`,
      'home/big': `dir 0700 3000000:3000001 ${T0}`,
      opt: `${d} *`,
      'opt/app': `symlink 0:0 ${T0} -> /srv/www`,
      run: `${d} *`,
      'run/fifo': `fifo 0600 0:0 ${T0}`,
      srv: `${d} ${T0 + 14}`,
      'srv/www': `file 0644 0:0 ${T0} "www\\n"`,
      tmp: `dir 1777 0:0 ${T0}`,
      usr: `${d} ${T0}`,
      'usr/bin': `${d} *`,
      'usr/bin/newtool': `file 0755 0:0 ${T0} "new\\n"`,
      'usr/bin/sg': `file 2755 0:50 ${T0} "sg\\n"`,
      'usr/bin/tool': `file 4755 0:0 ${T0 + 4} "#!tool\\n"`,
      'usr/bin/tool2': `file 4755 0:0 ${T0 + 4} "#!tool\\n"`,
      'usr/share': `${d} ${T0}`,
      'usr/share/locale': `dir 0751 0:0 ${T0 + 13}`,
      'usr/share/locale/de': `${d} *`,
      'usr/share/locale/de/z': `file 0644 0:0 ${T0} "de\\n"`,
      'usr/share/locale/it': `${d} *`,
      'usr/share/locale/it/w': `file 0644 0:0 ${T0} "it\\n"`,
      var: `${d} ${T0 + 12}`,
    });
    const tool = await lstat(join(box.root, 'usr/bin/tool'));
    const tool2 = await lstat(join(box.root, 'usr/bin/tool2'));
    assert.equal(tool.ino, tool2.ino, 'hardlink shares the inode');
    assert.equal(tool.ino, tool1.ino, 'layer 2 did not touch the file');
    assert.equal(tool.nlink, 2);
    assert.equal((await lstat(box.root)).mode & 0o7777, 0o755, 'the ./ entry sets the root mode');
    assert.deepEqual(await box.outside(), outsideBefore, 'nothing outside the root changed');
  } finally {
    await box.cleanup();
  }
});

test('unpackLayers applies layers in order with one budget, opening each lazily; gzip is sniffed whatever the label', async () => {
  const box = await makeSandbox();
  try {
    const file = join(box.base, 'l1.blob');
    await writeFile(file, await buildTarGz(layer1));
    const opened: string[] = [];
    const budget = new UnpackBudget();
    const total = await unpackLayers(
      box.root,
      [
        // A gzip blob labelled as plain tar (some registries do that), read from a file stream.
        { mediaType: TAR, open: () => (opened.push('l1'), createReadStream(file)) },
        // A plain tar labelled as Docker gzip: also accepted.
        { mediaType: DOCKER_TGZ, open: async () => (opened.push('l2'), Readable.from([await buildTar(layer2)])) },
      ],
      { budget },
    );
    assert.deepEqual(opened, ['l1', 'l2']);
    assert.equal(total.entries, layer1.length + layer2.length);
    assert.equal(total.whiteouts, 3);
    assert.deepEqual(budget.snapshot(), total);
    assert.equal(await readFile(join(box.root, 'etc/hostname'), 'utf8'), 'two\n');
    await assert.rejects(lstat(join(box.root, 'var/cache')), { code: 'ENOENT' });
  } finally {
    await box.cleanup();
  }
});

test('an opaque marker applied first still keeps later entries, and whiteouts of missing names are no-ops', async () => {
  const box = await makeSandbox();
  try {
    await unpackLayer(box.root, Readable.from([await buildTar([{ name: 'd/old/x', data: 'x' }, { name: 'd/keep', data: 'k' }])]), { mediaType: TAR });
    const s = await unpackLayer(
      box.root,
      Readable.from([
        await buildTar([
          { name: 'd/old/new', data: 'n' }, // written into a lower directory before the marker
          { name: 'd/.wh..wh..opq' },
          { name: 'd/.wh.never-existed' },
          { name: 'nodir/.wh.x' },
          { name: 'd/.wh..wh.plnk' }, // AUFS metadata: ignored
          { name: 'd/fresh', data: 'f' },
        ]),
      ]),
      { mediaType: TAR },
    );
    assert.equal(s.whiteouts, 4);
    assert.deepEqual((await readdir(join(box.root, 'd'))).sort(), ['fresh', 'old']);
    assert.deepEqual(await readdir(join(box.root, 'd/old')), ['new'], 'lower children of a kept directory are hidden too');
    await assert.rejects(lstat(join(box.root, 'nodir')), { code: 'ENOENT' });
  } finally {
    await box.cleanup();
  }
});

test('an existing file or symlink is replaced, never written through; a whiteout removes a symlink, not its target', async () => {
  const box = await makeSandbox();
  try {
    const lower = await buildTar([
      { name: 'target', data: 'original' },
      { name: 'link', type: 'symlink', linkname: 'target' },
      { name: 'dirlink', type: 'symlink', linkname: 'realdir' },
      { name: 'realdir/f', data: 'f' },
    ]);
    await unpackLayer(box.root, Readable.from([lower]), { mediaType: TAR });
    await unpackLayer(box.root, Readable.from([await buildTar([{ name: 'link', data: 'replaced' }, { name: '.wh.dirlink' }])]), { mediaType: TAR });
    assert.equal(await readFile(join(box.root, 'target'), 'utf8'), 'original');
    assert.ok((await lstat(join(box.root, 'link'))).isFile());
    assert.equal(await readFile(join(box.root, 'link'), 'utf8'), 'replaced');
    await assert.rejects(lstat(join(box.root, 'dirlink')), { code: 'ENOENT' });
    assert.equal(await readFile(join(box.root, 'realdir/f'), 'utf8'), 'f');
  } finally {
    await box.cleanup();
  }
});

test('within one layer a later entry wins; a file used as a parent or a non-directory root is a corrupt layer', async () => {
  const box = await makeSandbox();
  try {
    await unpackLayer(box.root, Readable.from([await buildTar([
      { name: 'dup', data: 'first' },
      { name: 'dup', data: 'second', mode: 0o600 },
      { name: 'd/', type: 'directory', mode: 0o700 },
      { name: 'd/', type: 'directory', mode: 0o755 },
    ])]), { mediaType: TAR });
    assert.equal(await readFile(join(box.root, 'dup'), 'utf8'), 'second');
    assert.equal((await lstat(join(box.root, 'd'))).mode & 0o7777, 0o755);

    const err = await unpackLayer(box.root, Readable.from([await buildTar([{ name: 'dup/x', data: 'x' }])]), { mediaType: TAR }).catch((e: unknown) => e);
    assert.ok(err instanceof CorruptLayerError && err.rule === 'parent-not-directory' && err.entryPath === 'dup/x', String(err));
    const rootErr = await unpackLayer(box.root, Readable.from([await buildTar([{ name: './', data: 'x' }])]), { mediaType: TAR }).catch((e: unknown) => e);
    assert.ok(rootErr instanceof CorruptLayerError && rootErr.rule === 'root-not-directory', String(rootErr));
  } finally {
    await box.cleanup();
  }
});
