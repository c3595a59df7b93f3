import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProviderUnavailableError } from '../core/errors.js';
import { parseLdd, sharedLibraries, SYSTEM_IMAGE_FORMAT, systemImageInputs, systemImageKey } from './system-image-inputs.js';

/** Fake node/crun/socat (scripts: no ELF, so no libraries), agent and init; busybox is the host's real one. */
async function fakeInputs(dir: string): Promise<{ nodeBinary: string; crunBinary: string; socatBinary: string; agentBundle: string; initScript: string }> {
  await mkdir(dir, { recursive: true });
  const files = {
    nodeBinary: join(dir, 'node'),
    crunBinary: join(dir, 'crun'),
    socatBinary: join(dir, 'socat'),
    agentBundle: join(dir, 'agent.js'),
    initScript: join(dir, 'init.sh'),
  };
  await writeFile(files.socatBinary, '#!/bin/sh\necho fake socat\n', { mode: 0o755 });
  await writeFile(files.nodeBinary, '#!/bin/sh\necho fake node\n', { mode: 0o755 });
  await writeFile(files.crunBinary, '#!/bin/sh\necho fake crun\n', { mode: 0o755 });
  await writeFile(files.agentBundle, 'console.log("agent v1");\n');
  // The exec helper is found next to the bundle.
  await writeFile(join(dir, 'exec-helper'), '#!/bin/sh\necho fake helper\n', { mode: 0o755 });
  await writeFile(files.initScript, '#!/bin/sh\necho init\n', { mode: 0o755 });
  return files;
}

test('inputs list every file with its guest path, mode and sha256; the key is stable', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-sysimg-inputs-'));
  try {
    const fake = await fakeInputs(dir);
    const a = await systemImageInputs(fake);
    const b = await systemImageInputs(fake);
    assert.equal(a.format, SYSTEM_IMAGE_FORMAT);
    assert.deepEqual(
      a.files.filter((f) => f.role !== 'agent-module').map((f) => [f.role, f.guestPath, f.mode.toString(8)]),
      [
        ['agent', '/agent/agent.js', '644'],
        ['exec-helper', '/agent/exec-helper', '755'],
        ['busybox', '/bin/busybox', '755'],
        ['init', '/sbin/init', '755'],
        ['crun', '/usr/bin/crun', '755'],
        ['node', '/usr/bin/node', '755'],
        ['socat', '/usr/bin/socat', '755'],
      ],
    );
    // node-pty (the agent's terminals) beside the bundle: its package.json, lib and native addon.
    const modules = new Map(a.files.filter((f) => f.role === 'agent-module').map((f) => [f.guestPath, f.mode.toString(8)]));
    assert.equal(modules.get('/agent/node_modules/node-pty/package.json'), '644');
    assert.equal(modules.get('/agent/node_modules/node-pty/lib/index.js'), '644');
    assert.equal(modules.get('/agent/node_modules/node-pty/build/Release/pty.node'), '755');
    assert.ok(![...modules.keys()].some((p) => p.endsWith('.test.js') || p.endsWith('.map')));
    const agent = a.files.find((f) => f.role === 'agent')!;
    assert.equal(agent.sha256, createHash('sha256').update('console.log("agent v1");\n').digest('hex'));
    assert.equal(agent.sizeBytes, 'console.log("agent v1");\n'.length);
    assert.match(systemImageKey(a), /^[0-9a-f]{64}$/);
    assert.equal(systemImageKey(a), systemImageKey(b));
    // Order of the list does not matter, only its content.
    assert.equal(systemImageKey({ ...a, files: [...a.files].reverse() }), systemImageKey(a));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the key changes with any input content or the format, not with host paths', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-sysimg-inputs-'));
  try {
    const fake = await fakeInputs(dir);
    const base = systemImageKey(await systemImageInputs(fake));

    await writeFile(fake.agentBundle, 'console.log("agent v2, longer");\n');
    const agentChanged = systemImageKey(await systemImageInputs(fake));
    assert.notEqual(agentChanged, base);

    await writeFile(fake.nodeBinary, '#!/bin/sh\necho another fake node\n', { mode: 0o755 });
    const nodeChanged = systemImageKey(await systemImageInputs(fake));
    assert.notEqual(nodeChanged, agentChanged);

    await writeFile(fake.initScript, '#!/bin/sh\necho init, edited\n', { mode: 0o755 });
    const initChanged = systemImageKey(await systemImageInputs(fake));
    assert.notEqual(initChanged, nodeChanged);

    const inputs = await systemImageInputs(fake);
    assert.notEqual(systemImageKey({ ...inputs, format: inputs.format + 1 }), initChanged);

    // The same bytes from elsewhere (another node install path) give the same image.
    const elsewhere = join(dir, 'other', 'node');
    await mkdir(join(dir, 'other'));
    await copyFile(fake.nodeBinary, elsewhere);
    assert.equal(systemImageKey(await systemImageInputs({ ...fake, nodeBinary: elsewhere })), initChanged);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('missing inputs are ProviderUnavailableError with the fix in the message', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-sysimg-inputs-'));
  try {
    const fake = await fakeInputs(dir);
    await assert.rejects(systemImageInputs({ ...fake, crunBinary: join(dir, 'no-crun') }), (err: unknown) => {
      assert.ok(err instanceof ProviderUnavailableError);
      assert.match(err.message, /install crun: apt-get install crun/);
      return true;
    });
    await assert.rejects(systemImageInputs({ ...fake, nodeBinary: join(dir, 'no-node') }), ProviderUnavailableError);
    await assert.rejects(systemImageInputs({ ...fake, agentBundle: join(dir, 'no-agent.js') }), /agent bundle not found/);
    await assert.rejects(systemImageInputs({ ...fake, execHelper: join(dir, 'no-helper') }), /exec helper not found .*needs gcc and libc6-dev/);
    // busybox.ts insists on a static binary: a script is refused.
    await assert.rejects(systemImageInputs({ ...fake, busyboxPath: fake.crunBinary }), /busybox-static/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('parseLdd keeps resolved libraries and the loader, skips the vDSO, refuses missing ones', () => {
  const output = [
    '\tlinux-vdso.so.1 (0x00007ffd1a5f2000)',
    '\tlibdl.so.2 => /lib/x86_64-linux-gnu/libdl.so.2 (0x00007fb963157000)',
    '\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007fb962c1e000)',
    '\t/lib64/ld-linux-x86-64.so.2 (0x00007fb963170000)',
    '',
  ].join('\n');
  assert.deepEqual(parseLdd(output, '/usr/bin/x'), [
    '/lib/x86_64-linux-gnu/libdl.so.2',
    '/lib/x86_64-linux-gnu/libc.so.6',
    '/lib64/ld-linux-x86-64.so.2',
  ]);
  assert.throws(() => parseLdd('\tlibfoo.so.1 => not found\n', '/usr/bin/x'), (err: unknown) => {
    assert.ok(err instanceof ProviderUnavailableError);
    assert.match(err.message, /\/usr\/bin\/x needs libfoo\.so\.1/);
    return true;
  });
});

test('the host node needs libc and the loader; static busybox and scripts need nothing', async () => {
  const libs = await sharedLibraries(process.execPath);
  assert.ok(libs.some((l) => /\/libc\.so\.6$/.test(l)), libs.join(' '));
  assert.ok(libs.some((l) => /\/ld-linux-x86-64\.so\.2$/.test(l)), libs.join(' '));
  assert.deepEqual(await sharedLibraries('/usr/bin/busybox'), []);
  const dir = await mkdtemp(join(tmpdir(), 'hc-sysimg-inputs-'));
  try {
    assert.deepEqual(await sharedLibraries((await fakeInputs(dir)).nodeBinary), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('ldd runs once per binary file: later creates reuse its answer until the binary changes', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-sysimg-ldd-'));
  const savedPath = process.env['PATH'];
  try {
    // An ldd on PATH that logs each run, then asks the real one.
    const log = join(dir, 'ldd.log');
    await mkdir(join(dir, 'bin'));
    await writeFile(join(dir, 'bin', 'ldd'), `#!/bin/sh\necho "$1" >> ${log}\nexec /usr/bin/ldd "$@"\n`, { mode: 0o755 });
    process.env['PATH'] = `${join(dir, 'bin')}:${savedPath ?? ''}`;
    const binary = join(dir, 'crun');
    await copyFile('/usr/bin/crun', binary);
    const first = await sharedLibraries(binary);
    for (let i = 0; i < 3; i++) assert.deepEqual(await sharedLibraries(binary), first);
    const runs = async () => (await readFile(log, 'utf8')).trim().split('\n').length;
    assert.equal(await runs(), 1);
    // Replaced (a new crun from apt): asked again.
    await rm(binary);
    await copyFile('/usr/bin/crun', binary);
    assert.deepEqual(await sharedLibraries(binary), first);
    assert.equal(await runs(), 2);
  } finally {
    process.env['PATH'] = savedPath;
    await rm(dir, { recursive: true, force: true });
  }
});
