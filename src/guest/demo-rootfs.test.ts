import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError } from '../core/errors.js';
import { runCommand } from '../system/command.js';
import { buildDemoRootfs, DEMO_MARKER } from './demo-rootfs.js';

async function debugfs(image: string, request: string): Promise<string> {
  return (await runCommand('debugfs', ['-R', request, image], { timeoutMs: 20_000 })).stdout;
}

test('the demo rootfs is a clean ext4 image whose /sbin/init prints the marker', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-demo-test-'));
  try {
    const image = join(dir, 'rootfs.ext4');
    await buildDemoRootfs({ output: image, marker: 'e2e-marker 42', files: { '/etc/rc.local': '#!/bin/sh\necho from rc.local\n', '/etc/motd': 'hi\n' } });
    await runCommand('e2fsck', ['-fn', image], { timeoutMs: 20_000 });
    assert.equal((await stat(image)).size, 16 * 1024 * 1024);
    assert.deepEqual(await readdir(dir), ['rootfs.ext4'], 'no temporary files left next to the image');

    const init = await debugfs(image, 'cat /sbin/init');
    assert.match(init, /^#!\/bin\/busybox sh\n/);
    assert.match(init, /cat \/etc\/hypercore-demo\/marker/);
    assert.match(init, /while :; do sleep 3600; done/);
    assert.equal(await debugfs(image, 'cat /etc/hypercore-demo/marker'), 'e2e-marker 42\n');
    assert.equal(await debugfs(image, 'cat /etc/rc.local'), '#!/bin/sh\necho from rc.local\n');
    assert.match(await debugfs(image, 'stat /etc/rc.local'), /Mode:\s+0755/);
    assert.match(await debugfs(image, 'stat /etc/motd'), /Mode:\s+0644/);
    assert.match(await debugfs(image, 'stat /sbin/init'), /Mode:\s+0755/);
    assert.match(await debugfs(image, 'stat /bin/sh'), /Fast link dest: "busybox"/);
    assert.match(await debugfs(image, 'stat /bin/busybox'), /Mode:\s+0755/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the default marker is the documented line', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-demo-test-'));
  try {
    const image = join(dir, 'root.img');
    await buildDemoRootfs({ output: image, sizeMiB: 8 });
    assert.equal(await debugfs(image, 'cat /etc/hypercore-demo/marker'), `${DEMO_MARKER}\n`);
    assert.equal(DEMO_MARKER, 'hypercore-demo: guest is up');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('bad demo rootfs options are rejected before anything is written', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-demo-test-'));
  const output = join(dir, 'never.ext4');
  await assert.rejects(buildDemoRootfs({ output, marker: 'two\nlines' }), InvalidArgumentError);
  await assert.rejects(buildDemoRootfs({ output, sizeMiB: 1 }), InvalidArgumentError);
  await assert.rejects(buildDemoRootfs({ output, files: { 'etc/x': '' } }), InvalidArgumentError);
  await assert.rejects(buildDemoRootfs({ output, files: { '/../x': '' } }), InvalidArgumentError);
  assert.deepEqual(await readdir(dir), []);
  await rm(dir, { recursive: true, force: true });
});
