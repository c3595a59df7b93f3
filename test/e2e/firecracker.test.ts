/**
 * The lifecycle and agent e2e on a real Firecracker. Opt-in: it runs only when
 * HYPERCORE_TEST_FIRECRACKER names a Firecracker binary (1.8 or newer) on a host where KVM works,
 * and is skipped otherwise. No host this project's CI runs on can run it (no usable KVM); the
 * contract tests (firecracker-contract.test.ts and the provider's unit tests) are what runs there.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Vm } from '../../src/core/vm.js';
import { loadStaticBusybox } from '../../src/guest/busybox.js';
import { buildDemoRootfs, DEMO_MARKER } from '../../src/guest/demo-rootfs.js';
import { encodeNewc } from '../../src/guest/newc.js';
import { startRegistry, type RegistryProcess } from '../../src/images/registry/testing/registry-process.js';
import { pushBusyboxImage } from './busybox-image.js';
import { bootDir, isAlive, lastLine, TestDaemon, waitFor } from './harness.js';

const binary = process.env['HYPERCORE_TEST_FIRECRACKER'];
const skip = binary ? false : 'opt-in: set HYPERCORE_TEST_FIRECRACKER=/path/to/firecracker (1.8 or newer) on a host with usable KVM to run the lifecycle and agent e2e on Firecracker';
const daemon = new TestDaemon('hc-e2e-fc-');
let registry: RegistryProcess | undefined;

before(async () => {
  if (skip) return;
  await daemon.start();
});

after(async () => {
  await daemon.cleanup();
  await registry?.stop();
});

function hac(name: string, hardware: string, extra = ''): string {
  const file = join(daemon.dir, `${name}.toml`);
  writeFileSync(file, `[spacecore]\nname = "${name}"\n[hardware]\ncores = 1\nmemory = 256\n${hardware}\n${extra}[hypervisor]\nprovider = "firecracker"\n[hypervisor.firecracker]\nbinary = "${binary}"\n[network]\nmode = "none"\n`);
  return file;
}

function vmById(id: string): Vm | undefined {
  return (JSON.parse(daemon.cli(['ls', '--json']).stdout) as Vm[]).find((v) => v.id === id);
}

test('lifecycle on Firecracker: a drive VM boots the ELF kernel, pauses, resumes, stops, starts, survives a daemon crash, is removed', { skip }, async () => {
  await buildDemoRootfs({ output: join(daemon.dir, 'rootfs.ext4') });
  const spawn = daemon.cli(['spawn', '--hac', hac('fc-life', 'drive = "rootfs.ext4"')]);
  assert.equal(spawn.code, 0, `${spawn.stderr}\n${daemon.log()}`);
  const id = lastLine(spawn.stdout);
  assert.equal(vmById(id)?.provider, 'firecracker');
  await waitFor('the demo marker on the console', 60_000, () => (daemon.cli(['logs', id]).stdout.includes(DEMO_MARKER) ? true : undefined));
  assert.equal(daemon.cli(['pause', id]).code, 0);
  assert.equal(vmById(id)?.state, 'paused');
  assert.equal(daemon.cli(['resume', id]).code, 0);
  assert.equal(vmById(id)?.state, 'running');
  const stop = daemon.cli(['stop', id]);
  assert.equal(stop.code, 0, stop.stderr);
  assert.equal(vmById(id)?.state, 'stopped');
  assert.equal(daemon.cli(['start', id]).code, 0);
  const pid = vmById(id)!.pid!;
  await daemon.kill9();
  await daemon.start();
  assert.equal(vmById(id)?.pid, pid, 'adopted after the daemon crash');
  assert.equal(daemon.cli(['rm', '-f', id]).code, 0);
  assert.ok(!isAlive(pid));
  assert.deepEqual(daemon.strayProcesses(), []);
  assert.deepEqual(daemon.vmDirs(), []);
});

test('agent on Firecracker: an image VM answers over hybrid vsock, runs exec, and stops cleanly', { skip }, async () => {
  registry = await startRegistry();
  const ref = await pushBusyboxImage(registry, 'NAME="Hypercore firecracker test"\nID=hcfc\n');
  process.env['HYPERCORE_AGENT_TIMEOUT'] = '90';
  const spawn = daemon.cli(['spawn', '--hac', hac('fc-agent', `ref = "${ref}"`, '[workload]\ncommand = ["sleep", "100000"]\n')]);
  assert.equal(spawn.code, 0, `${spawn.stderr}\n${daemon.log()}`);
  const id = lastLine(spawn.stdout);
  const exec = daemon.cli(['exec', id, '--', 'cat', '/etc/os-release']);
  assert.equal(exec.code, 0, exec.stderr);
  assert.match(exec.stdout, /Hypercore firecracker test/);
  const write = daemon.cli(['exec', id, '--', 'sh', '-c', 'echo kept > /kept && cat /kept']);
  assert.equal(write.stdout, 'kept\n', 'the scratch overlay takes writes');
  const stop = daemon.cli(['stop', id]);
  assert.equal(stop.code, 0, stop.stderr);
  const vm = vmById(id)!;
  assert.equal(vm.state, 'stopped');
  assert.equal(vm.error, undefined, 'a clean power-off (the guest rebooted, which ends Firecracker)');
  assert.equal(daemon.cli(['rm', id]).code, 0);
});

test('kernel-only VM on Firecracker: an initramfs-only guest prints a line, reboots, and the VM is stopped', { skip }, async () => {
  const marker = 'hypercore-kernel-only: hello from Firecracker';
  // Firecracker (x86) ends only when its guest reboots, so this guest reboots to power off.
  const init = `#!/bin/busybox sh\n/bin/busybox echo "${marker}"\n/bin/busybox reboot -f\n`;
  writeFileSync(
    join(daemon.dir, 'hello.cpio.gz'),
    gzipSync(
      encodeNewc([
        { type: 'dir', path: 'bin' },
        { type: 'dir', path: 'dev' },
        { type: 'chardev', path: 'dev/console', major: 5, minor: 1, mode: 0o600 },
        { type: 'file', path: 'bin/busybox', data: (await loadStaticBusybox()).data, mode: 0o755 },
        { type: 'file', path: 'init', data: Buffer.from(init), mode: 0o755 },
      ]),
    ),
  );
  const spawn = daemon.cli(['spawn', '--hac', hac('fc-bare', `kernel = "${join(bootDir, 'vmlinux')}"\ninitrd = "hello.cpio.gz"`)]);
  assert.equal(spawn.code, 0, `${spawn.stderr}\n${daemon.log()}`);
  const id = lastLine(spawn.stdout);
  const stopped = await waitFor('the guest to end', 60_000, () => {
    const vm = vmById(id);
    return vm?.state === 'stopped' || vm?.state === 'failed' ? vm : undefined;
  });
  assert.equal(stopped.state, 'stopped', stopped.error?.message);
  assert.match(daemon.cli(['logs', id]).stdout, new RegExp(marker));
  assert.equal(daemon.cli(['rm', id]).code, 0);
});
