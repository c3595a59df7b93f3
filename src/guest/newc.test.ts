import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCommand } from '../system/command.js';
import { encodeNewc } from './newc.js';
import { readNewc } from './test-helpers.js';

const sample = encodeNewc([
  { type: 'dir', path: 'bin' },
  { type: 'dir', path: 'dev' },
  { type: 'file', path: 'bin/busybox', data: Buffer.from('0123456789'), mode: 0o755 },
  { type: 'symlink', path: 'bin/sh', target: 'busybox' },
  { type: 'chardev', path: 'dev/console', major: 5, minor: 1 },
  { type: 'file', path: '/init', data: Buffer.from('#!/bin/sh\n'), mode: 0o755 },
]);

test('cpio(1) lists every member of an encoded newc archive', async () => {
  const { stdout } = await runCommand('cpio', ['-it', '--quiet'], { input: sample, timeoutMs: 10_000 });
  assert.deepEqual(stdout.trim().split('\n'), ['bin', 'dev', 'bin/busybox', 'bin/sh', 'dev/console', 'init']);
});

test('newc members keep type, mode, device numbers and data; records are 4-byte aligned', () => {
  assert.equal(sample.length % 4, 0);
  const members = new Map(readNewc(sample).map((m) => [m.name, m]));
  assert.equal(members.get('bin')!.mode, 0o040755);
  assert.equal(members.get('bin/busybox')!.mode, 0o100755);
  assert.equal(members.get('bin/busybox')!.data.toString(), '0123456789');
  assert.equal(members.get('bin/sh')!.mode, 0o120777);
  assert.equal(members.get('bin/sh')!.data.toString(), 'busybox');
  assert.equal(members.get('dev/console')!.mode, 0o020600);
  assert.deepEqual([members.get('dev/console')!.rdevMajor, members.get('dev/console')!.rdevMinor], [5, 1]);
  assert.equal(members.get('init')!.data.toString(), '#!/bin/sh\n');
});

test('newc rejects paths that escape the archive root', () => {
  assert.throws(() => encodeNewc([{ type: 'dir', path: '../etc' }]), /invalid cpio path/);
  assert.throws(() => encodeNewc([{ type: 'dir', path: '/' }]), /invalid cpio path/);
});
