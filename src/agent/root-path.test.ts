import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findExecutable, resolveInRoot } from './root-path.js';

const head = (file: string): Buffer => readFileSync(file).subarray(0, 64);

function rootfs(): string {
  const root = mkdtempSync(join(tmpdir(), 'hc-rootpath-'));
  mkdirSync(join(root, 'bin'));
  mkdirSync(join(root, 'usr/bin'), { recursive: true });
  writeFileSync(join(root, 'bin/busybox'), '#!/bin/busybox\n');
  chmodSync(join(root, 'bin/busybox'), 0o755);
  symlinkSync('/bin/busybox', join(root, 'bin/sh'));
  return root;
}

test('symlinks resolve inside the container root, never into the host (absolute, relative, ..)', () => {
  const root = rootfs();
  try {
    symlinkSync('/etc/shadow', join(root, 'usr/bin/evil'));
    symlinkSync('../../../../../../etc/passwd', join(root, 'usr/bin/up'));
    assert.equal(resolveInRoot(root, '/bin/sh'), join(root, 'bin/busybox'));
    assert.equal(resolveInRoot(root, '/usr/bin/evil'), undefined, 'the image has no /etc/shadow: not the host one');
    mkdirSync(join(root, 'etc'));
    writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0::/:/bin/sh\n');
    assert.equal(resolveInRoot(root, '/usr/bin/up'), join(root, 'etc/passwd'));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a loop of symlinks ends in "not found", not a hang', () => {
  const root = rootfs();
  try {
    symlinkSync('b', join(root, 'bin/a'));
    symlinkSync('a', join(root, 'bin/b'));
    assert.equal(resolveInRoot(root, '/bin/a'), undefined);
    assert.throws(() => findExecutable(root, 'a', '/bin', '/', head), /executable file not found/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the command is looked up as execvp does, with runc\'s words when it cannot run', () => {
  const root = rootfs();
  try {
    assert.equal(findExecutable(root, 'sh', '/usr/bin:/bin', '/', head).hostPath, join(root, 'bin/busybox'));
    assert.throws(() => findExecutable(root, 'nosuch', '/usr/bin:/bin', '/', head), /^Error: exec: "nosuch": executable file not found in \$PATH$/);
    writeFileSync(join(root, 'bin/data'), 'x');
    assert.throws(() => findExecutable(root, '/bin/data', '/bin', '/', head), /permission denied/);
    const arm = Buffer.alloc(64);
    arm.writeUInt32BE(0x7f454c46, 0);
    arm[5] = 1;
    arm.writeUInt16LE(183, 18); // aarch64
    writeFileSync(join(root, 'bin/armbin'), arm, { mode: 0o755 });
    assert.throws(() => findExecutable(root, 'armbin', '/bin', '/', head), /exec format error \(an ELF binary for machine 183/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
