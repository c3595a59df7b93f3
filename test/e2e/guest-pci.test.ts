/**
 * The guest side of the Cloud Hypervisor path, for real, in a QEMU guest (no host here can run
 * Cloud Hypervisor): the VmConfig the provider sends is rendered into the nearest QEMU machine,
 * `-M microvm,pcie=on` with ACPI, so the guest meets what Cloud Hypervisor gives it: virtio-pci
 * disks (the root, and the daemon's qcow2 overlay over a raw block image, with the serial the
 * provider sets), virtio-pci entropy, the serial console on ttyS0, and ACPI power-off. The stage-1
 * initramfs must load virtio_pci, find its root on the PCI disk, and the guest must read the
 * image through the overlay, find it by its serial, and power off the way that ends Cloud
 * Hypervisor (the console's last line, as the provider reads it, says "stopped").
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { VmDisk } from '../../src/core/image.js';
import { bootAssetPaths } from '../../src/guest/boot-assets.js';
import { buildDemoRootfs, DEMO_MARKER } from '../../src/guest/demo-rootfs.js';
import { createQcow2Overlay } from '../../src/images/vm-disks.js';
import { describeExit } from '../../src/providers/cloud-hypervisor/cloud-hypervisor-provider.js';
import { vmConfig, type CloudHypervisorPlan } from '../../src/providers/cloud-hypervisor/vm-config.js';
import { runCommand } from '../../src/system/command.js';
import { hostTscKhz } from '../../src/system/host.js';
import { bootDir, TestDaemon } from './harness.js';

const scratch = new TestDaemon('hc-e2e-gpci-');
const assets = bootAssetPaths(bootDir);

before(() => mkdirSync(scratch.dir, { recursive: true }));
after(async () => {
  await scratch.cleanup();
});

type Body = Record<string, unknown>;

/** QEMU arguments that give the guest the devices of a Cloud Hypervisor VmConfig. */
function qemuFor(config: Body, consoleLog: string): string[] {
  const payload = config['payload'] as { kernel: string; initramfs?: string; cmdline: string };
  // Under TCG, microvm has no timer to calibrate the TSC against (Cloud Hypervisor runs on KVM).
  const tsc = hostTscKhz();
  const cmdline = [payload.cmdline, ...(tsc ? [`tsc_early_khz=${tsc}`, 'tsc=reliable'] : [])].join(' ');
  const args = ['-M', 'microvm,pcie=on,acpi=on', '-accel', 'tcg', '-m', String(Number((config['memory'] as Body)['size']) / 1024 / 1024), '-smp', String((config['cpus'] as Body)['boot_vcpus'])];
  args.push('-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot', '-serial', `file:${consoleLog}`);
  args.push('-kernel', payload.kernel, ...(payload.initramfs ? ['-initrd', payload.initramfs] : []), '-append', cmdline);
  for (const disk of (config['disks'] ?? []) as Body[]) {
    const id = String(disk['id']);
    const format = disk['image_type'] === 'Qcow2' ? 'qcow2' : 'raw';
    args.push('-drive', `id=${id},file=${String(disk['path'])},format=${format},if=none${disk['readonly'] ? ',readonly=on' : ''}`);
    args.push('-device', `virtio-blk-pci,drive=${id}${disk['serial'] ? `,serial=${String(disk['serial'])}` : ''}`);
  }
  if (config['rng']) args.push('-object', 'rng-random,id=rng0,filename=/dev/urandom', '-device', 'virtio-rng-pci,rng=rng0');
  return args;
}

test("a guest on Cloud Hypervisor's devices (virtio-pci, ACPI): stage 1 finds its root on PCI, the image is read through the overlay and found by its serial, power-off is seen as a clean stop", async () => {
  const dir = scratch.dir;
  // The image's block image (raw ext4 with a file) and the daemon's overlay over it.
  const tree = join(dir, 'image-tree');
  mkdirSync(tree);
  writeFileSync(join(tree, 'hello.txt'), 'read through the overlay\n');
  const block = join(dir, 'block.ext4');
  await runCommand('mkfs.ext4', ['-q', '-F', '-d', tree, block, '8M']);
  const overlay = join(dir, 'image.qcow2');
  await createQcow2Overlay(block, overlay, 16 * 1024 * 1024);
  const image: VmDisk = { name: 'image', path: overlay, format: 'qcow2', readOnly: false, backing: block };
  const rcLocal = [
    '#!/bin/sh',
    'for d in /sys/block/vd*; do echo "hc-pci: disk ${d##*/} serial=$(cat $d/serial 2>/dev/null)"; done',
    'for d in /sys/block/vd*; do [ "$(cat $d/serial 2>/dev/null)" = image ] && dev=/dev/${d##*/}; done',
    'mkdir -p /tmp/image && mount -t ext4 "$dev" /tmp/image && echo "hc-pci: $(cat /tmp/image/hello.txt)"',
    'echo "hc-pci: $(ls /sys/bus/pci/drivers/virtio-pci | grep -c :) virtio-pci devices"',
    'poweroff -f',
    '',
  ].join('\n');
  const root = join(dir, 'root.ext4');
  await buildDemoRootfs({ output: root, files: { '/etc/rc.local': rcLocal } });
  const plan: CloudHypervisorPlan = {
    spec: { name: 'pci', description: '', cores: 1, memoryMib: 256, kernelArgs: '', driveReadOnly: false, provider: 'cloud-hypervisor', hypervisor: {} },
    boot: { kernel: assets.kernel, initrd: assets.initrd, args: ['hc.root=vda', 'hc.rootflags=rw'] },
    rootDisk: { path: root, readOnly: false },
    disks: [image],
  };
  const consoleLog = join(dir, 'console.log');
  const run = await runCommand('qemu-system-x86_64', qemuFor(vmConfig(plan), consoleLog), { timeoutMs: 240_000 });
  assert.equal(run.exitCode, 0, 'the guest powered off and QEMU ended');
  const console = readFileSync(consoleLog, 'utf8');
  assert.match(console, new RegExp(DEMO_MARKER));
  assert.match(console, /hc-pci: disk vda serial=\r?$/m);
  assert.match(console, /hc-pci: disk vdb serial=image\r?$/m);
  assert.match(console, /hc-pci: read through the overlay\r?$/m);
  assert.match(console, /hc-pci: 3 virtio-pci devices\r?$/m);
  assert.deepEqual(await describeExit({ stateDir: dir, runDir: dir, consoleLog }), { outcome: 'stopped', reason: 'the guest powered off' });
});
