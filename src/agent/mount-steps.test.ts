import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { commandMounts, helperMountArgs, helperMounts, parseHelperMountOutput, type RootfsStep } from './mount-steps.js';

const HELPER = fileURLToPath(new URL('../../agent/exec-helper', import.meta.url));
const isRoot = process.getuid?.() === 0;

test('the helper gets every step on one command line; `-` stands for no options', () => {
  const steps: RootfsStep[] = [
    { kind: 'mount', fstype: 'ext4', source: '/dev/vdb', target: '/run/hc/image', options: 'ro' },
    { kind: 'mount', fstype: 'ext4', source: '/dev/vdc', target: '/run/hc/scratch' },
    { kind: 'mkdir', path: '/run/hc/scratch/upper' },
  ];
  assert.deepEqual(helperMountArgs(steps), ['mount', 'mount', 'ext4', '/dev/vdb', '/run/hc/image', 'ro', 'mount', 'ext4', '/dev/vdc', '/run/hc/scratch', '-', 'mkdir', '/run/hc/scratch/upper']);
});

test("the helper's answer names the failed step; anything else is refused", () => {
  assert.equal(parseHelperMountOutput('ok\n', 3), undefined);
  assert.deepEqual(parseHelperMountOutput('failed 2 mount overlay overlay on /r: Invalid argument\n', 3), { index: 2, reason: 'mount overlay overlay on /r: Invalid argument' });
  assert.throws(() => parseHelperMountOutput('failed 3 out of range\n', 3), /not "ok" or "failed <step> <reason>"/);
  assert.throws(() => parseHelperMountOutput('', 3), /answered ""/);
  assert.throws(() => parseHelperMountOutput('mount: something\n', 3), /answered "mount: something"/);
});

test('a helper that cannot run fails the mounts with its reason', async () => {
  const mounts = helperMounts('/nonexistent/exec-helper', async () => {
    throw new Error('could not be started: executable not found');
  });
  await assert.rejects(mounts([{ kind: 'mkdir', path: '/x' }]), /the exec helper could not run the rootfs mounts: could not be started: executable not found/);
});

test('mount(8) per mount: stops at the first failure and says which', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-mount-steps-'));
  try {
    const commands: string[] = [];
    const mounts = commandMounts(async (file, args) => {
      commands.push([file, ...args].join(' '));
      if (args.includes('overlay')) throw new Error('mount failed: boom');
    });
    const failed = await mounts([
      { kind: 'mount', fstype: 'tmpfs', source: 'tmpfs', target: join(dir, 's'), options: 'mode=755' },
      { kind: 'mkdir', path: join(dir, 's', 'upper') },
      { kind: 'mount', fstype: 'overlay', source: 'overlay', target: join(dir, 'r'), options: 'lowerdir=/l' },
      { kind: 'mkdir', path: join(dir, 'never') },
    ]);
    assert.deepEqual(failed, { index: 2, reason: 'mount failed: boom' });
    assert.deepEqual(commands, [`mount -t tmpfs -o mode=755 tmpfs ${dir}/s`, `mount -t overlay -o lowerdir=/l overlay ${dir}/r`]);
    assert.ok(existsSync(join(dir, 's', 'upper')));
    assert.ok(!existsSync(join(dir, 'never')), 'the steps after the failure did not run');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the exec helper creates directories and stops at the first failing step', { skip: !existsSync(HELPER) && 'no exec-helper binary (gcc missing at build)' }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-mount-steps-'));
  try {
    await writeFile(join(dir, 'file'), '');
    const mounts = helperMounts(HELPER);
    assert.equal(await mounts([{ kind: 'mkdir', path: join(dir, 'a', 'b') }, { kind: 'mkdir', path: join(dir, 'a', 'b') }]), undefined);
    assert.ok(statSync(join(dir, 'a', 'b')).isDirectory());
    // No such filesystem type: the mount changes nothing, and the step after it does not run.
    const failed = await mounts([{ kind: 'mkdir', path: join(dir, 'c') }, { kind: 'mount', fstype: 'hc-no-such-fs', source: 'none', target: join(dir, 'c'), options: 'ro' }, { kind: 'mkdir', path: join(dir, 'd') }]);
    assert.equal(failed?.index, 1);
    assert.match(failed!.reason, new RegExp(`mount hc-no-such-fs none on ${dir}/c: `));
    assert.ok(!existsSync(join(dir, 'd')));
    const notDir = await mounts([{ kind: 'mkdir', path: join(dir, 'file') }]);
    assert.deepEqual(notDir, { index: 0, reason: `mkdir ${dir}/file: Not a directory` });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the exec helper mounts with the options given (read-only plus tmpfs options)', { skip: (!isRoot && 'needs root (mount)') || (!existsSync(HELPER) && 'no exec-helper binary') }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-mount-steps-'));
  const target = join(dir, 't');
  try {
    const failed = await helperMounts(HELPER)([
      { kind: 'mkdir', path: target },
      { kind: 'mount', fstype: 'tmpfs', source: 'hc-test-tmpfs', target, options: 'mode=700,ro,size=1m' },
    ]);
    assert.equal(failed, undefined);
    const line = (await readFile('/proc/self/mounts', 'utf8')).split('\n').find((l) => l.split(' ')[1] === target);
    assert.ok(line, 'mounted');
    const [source, , fstype, options] = line.split(' ');
    assert.equal(source, 'hc-test-tmpfs');
    assert.equal(fstype, 'tmpfs');
    assert.match(options!, /^ro,/);
    assert.match(options!, /mode=700/);
    assert.equal(statSync(target).mode & 0o777, 0o700);
  } finally {
    try {
      execFileSync('umount', [target], { stdio: 'ignore' });
    } catch {
      // not mounted
    }
    await rm(dir, { recursive: true, force: true });
  }
});
