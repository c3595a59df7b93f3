import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCodes, HypercoreError } from '../../core/errors.js';
import type { VmSpec } from '../../core/vm.js';
import { qemuArguments, type QemuLaunchPlan } from './command-line.js';
import { parseVersion } from './qemu-provider.js';
import type { QmpClient } from './qmp-client.js';
import { checkCompatible, runningVersion, shellQuote, writeNotes } from './snapshot.js';

const spec: VmSpec = { name: 'web', description: '', cores: 1, memoryMib: 256, kernelArgs: '', driveReadOnly: false, image: 'x', provider: 'qemu', hypervisor: {} };
const plan: QemuLaunchPlan = { vmId: 'v1', spec, boot: { kernel: '/k', args: [] }, accel: 'tcg', consoleLog: '/c', serialSocket: '/s', qmpSocket: '/q', controlSocket: '/qc', pidFile: '/p' };

test('guest RAM is a shared file while the VM runs, a private mapping of the snapshot when it resumes', () => {
  const running = qemuArguments({ ...plan, memory: { path: '/run/vm/memory', share: true } });
  assert.equal(running[running.indexOf('-M') + 1], 'microvm,memory-backend=mem');
  assert.equal(running[running.indexOf('-object') + 1], 'memory-backend-file,id=mem,size=256M,mem-path=/run/vm/memory,share=on');
  assert.ok(!running.includes('-incoming'));
  const restored = qemuArguments({ ...plan, memory: { path: '/snap,1/memory', share: false }, incoming: true });
  assert.equal(restored[restored.indexOf('-object') + 1], 'memory-backend-file,id=mem,size=256M,mem-path=/snap,,1/memory,share=off');
  assert.deepEqual(restored.slice(restored.indexOf('-incoming'), restored.indexOf('-incoming') + 2), ['-incoming', 'defer']);
});

test('the serial port is a socket server that still appends every byte of output to the console log', () => {
  const args = qemuArguments({ ...plan, consoleLog: '/vms/a,b/console.log', serialSocket: '/run/a,b/serial.sock' });
  assert.equal(args[args.indexOf('-chardev') + 1], 'socket,id=console,path=/run/a,,b/serial.sock,server=on,wait=off,logfile=/vms/a,,b/console.log,logappend=on');
  assert.equal(args[args.indexOf('-serial') + 1], 'chardev:console');
});

test("the running QEMU's version reads as --version prints it, so a snapshot's version compares equal", async () => {
  const qmp = { execute: async () => ({ qemu: { major: 7, minor: 2, micro: 22 }, package: 'Debian 1:7.2+dfsg-7+deb12u18+b3' }) } as unknown as QmpClient;
  assert.equal(await runningVersion(qmp), parseVersion('QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022\n'));
  const plain = { execute: async () => ({ qemu: { major: 8, minor: 0, micro: 0 }, package: '' }) } as unknown as QmpClient;
  assert.equal(await runningVersion(plain), parseVersion('QEMU emulator version 8.0.0\n'));
});

test('a snapshot of another version, accelerator or memory size is refused naming both sides', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hc-qsnap-'));
  try {
    await writeNotes(dir, { version: '7.2.22', accel: 'tcg', memoryMib: 256 });
    const here = { version: '7.2.22', accel: 'tcg' as const, memoryMib: 256 };
    await checkCompatible(dir, { vmmVersion: '7.2.22', files: [] }, here);
    const refused = (message: RegExp) => (err: unknown) => err instanceof HypercoreError && err.code === ErrorCodes.snapshotIncompatible && message.test(err.message);
    await assert.rejects(checkCompatible(dir, { vmmVersion: '7.2.22', files: [] }, { ...here, version: '8.2.0' }), refused(/saved by QEMU 7\.2\.22, but this host runs QEMU 8\.2\.0/));
    await assert.rejects(checkCompatible(dir, { vmmVersion: '7.2.22', files: [] }, { ...here, accel: 'kvm' }), refused(/under TCG, but QEMU would run it under KVM/));
    await assert.rejects(checkCompatible(dir, { vmmVersion: '7.2.22', files: [] }, { ...here, memoryMib: 512 }), refused(/256 MiB .* 512 MiB/));
    await assert.rejects(checkCompatible(join(dir, 'none'), { vmmVersion: '7.2.22', files: [] }, here), refused(/no readable QEMU notes/));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('exec: URIs quote the path for /bin/sh', () => {
  assert.equal(shellQuote("/a b/it's"), "'/a b/it'\\''s'");
});
