import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { ProviderUnavailableError } from '../core/errors.js';
import { runCommand } from '../system/command.js';
import { isStaticElf, loadStaticBusybox } from './busybox.js';
import { buildStage1Initramfs, STAGE1_APPLETS, stage1InitScriptPath } from './initramfs.js';
import { STAGE1_MODULES } from './kernel-modules.js';
import { CLOUD_KERNEL_MODULES, makeFakeModuleTree, readNewc } from './test-helpers.js';

async function withFakeTree<T>(modules: typeof CLOUD_KERNEL_MODULES, fn: (modulesDir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'hc-initramfs-'));
  try {
    return await fn(await makeFakeModuleTree(dir, modules));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('the stage-1 initramfs holds /init, busybox with its applets, and the modules in load order', async () => {
  await withFakeTree(CLOUD_KERNEL_MODULES, async (modulesDir) => {
    const built = await buildStage1Initramfs({ modulesDir });
    const cpio = gunzipSync(built.data);
    const { stdout } = await runCommand('cpio', ['-it', '--quiet'], { input: cpio, timeoutMs: 10_000 });
    const listed = new Set(stdout.trim().split('\n'));
    for (const path of ['init', 'bin/busybox', 'bin/sh', 'dev/console', 'etc/hypercore/modules', 'newroot', 'proc', 'sys']) {
      assert.ok(listed.has(path), `${path} in the archive`);
    }
    for (const m of STAGE1_MODULES) assert.ok(listed.has(`lib/modules/${m}.ko`), `${m}.ko in the archive`);
    for (const a of STAGE1_APPLETS) assert.ok(listed.has(`bin/${a}`), `applet ${a}`);

    const members = new Map(readNewc(cpio).map((m) => [m.name, m]));
    assert.deepEqual(members.get('etc/hypercore/modules')!.data.toString().trim().split('\n'), [...STAGE1_MODULES]);
    assert.deepEqual(built.modules, [...STAGE1_MODULES]);
    // Carried, not loaded: vsock_loopback is in the archive for hc.mods= but not in the default list.
    assert.ok(listed.has('lib/modules/vsock_loopback.ko'));
    assert.deepEqual(built.carried, ['vsock_loopback']);
    assert.equal(members.get('init')!.mode & 0o777, 0o755);
    assert.deepEqual(members.get('init')!.data, await readFile(stage1InitScriptPath()));
    assert.deepEqual(members.get('bin/busybox')!.data, (await loadStaticBusybox()).data);
    assert.equal(members.get('bin/sh')!.data.toString(), 'busybox');
  });
});

test('the stage-1 initramfs is reproducible and can be left uncompressed', async () => {
  await withFakeTree(CLOUD_KERNEL_MODULES, async (modulesDir) => {
    const a = await buildStage1Initramfs({ modulesDir });
    const b = await buildStage1Initramfs({ modulesDir });
    assert.equal(a.sha256, b.sha256);
    const raw = await buildStage1Initramfs({ modulesDir, compression: 'none' });
    assert.equal(raw.data.subarray(0, 6).toString(), '070701');
    assert.deepEqual(raw.data, gunzipSync(a.data));
  });
});

test('optional modules absent from the kernel are skipped; required ones are an error', async () => {
  const { vsock: _v, overlay: _o, ...withoutOptional } = CLOUD_KERNEL_MODULES;
  await withFakeTree(withoutOptional, async (modulesDir) => {
    const built = await buildStage1Initramfs({ modulesDir });
    // The vsock transports depend on vsock, so they cannot load either.
    assert.deepEqual(built.missing, ['vsock', 'vmw_vsock_virtio_transport_common', 'vmw_vsock_virtio_transport', 'overlay']);
    assert.deepEqual(built.modules, STAGE1_MODULES.filter((m) => !built.missing.includes(m)));
  });
  const { virtio_blk: _b, ...withoutBlk } = CLOUD_KERNEL_MODULES;
  await withFakeTree(withoutBlk, async (modulesDir) => {
    await assert.rejects(buildStage1Initramfs({ modulesDir }), (err: unknown) => err instanceof ProviderUnavailableError && /virtio_blk/.test(err.message));
  });
});

test('the stage-1 /init is valid busybox sh and the host busybox is static', async () => {
  await runCommand('/usr/bin/busybox', ['sh', '-n', stage1InitScriptPath()], { timeoutMs: 10_000 });
  assert.ok(isStaticElf((await loadStaticBusybox()).data));
  assert.equal(isStaticElf(await readFile(process.execPath)), false, 'node is dynamically linked');
  assert.equal(isStaticElf(Buffer.from('#!/bin/sh\n')), false);
});
