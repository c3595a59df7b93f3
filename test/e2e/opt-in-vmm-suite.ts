/**
 * The lifecycle, agent and kernel-only e2e on a real VMM other than QEMU, for hosts where it runs
 * (KVM usable). Opt-in: a provider's suite runs only when its environment variable names the VMM's
 * binary, and is skipped otherwise with a reason starting `opt-in:`, the one skip CI allows. The
 * hosts this project's CI runs on cannot run these VMMs (no usable KVM); their contract tests
 * against fake VMMs are what runs there.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildDemoRootfs, DEMO_MARKER } from '../../src/guest/demo-rootfs.js';
import { startRegistry, type RegistryProcess } from '../../src/images/registry/testing/registry-process.js';
import { pushBusyboxImage } from './busybox-image.js';
import { bootDir, isAlive, lastLine, TestDaemon, waitFor } from './harness.js';
import { writeHelloInitramfs } from './hello-initramfs.js';
import { vmById } from './vmm-contract-kit.js';

export interface OptInVmmSuite {
  /** The provider, e.g. `cloud-hypervisor`, and its name in test titles. */
  provider: string;
  title: string;
  /** Its [hypervisor.<table>] in hac.toml. */
  table: string;
  /** The environment variable that names the binary, and what the skip reason asks for. */
  env: string;
  requirement: string;
  /** The default kernel file in the boot dir this VMM boots (`vmlinuz` or `vmlinux`). */
  kernel: string;
  /** How the kernel-only guest ends so that this VMM exits. */
  guestEnd: 'poweroff' | 'reboot';
}

export function optInVmmSuite(o: OptInVmmSuite): void {
  const binary = process.env[o.env];
  const skip = binary ? false : `opt-in: set ${o.env}=${o.requirement} on a host with usable KVM to run the lifecycle and agent e2e on ${o.title}`;
  const daemon = new TestDaemon(`hc-e2e-${o.provider}-`);
  let registry: RegistryProcess | undefined;

  before(async () => {
    if (skip) return;
    registry = await startRegistry();
    await daemon.start();
  });

  after(async () => {
    await daemon.cleanup();
    await registry?.stop();
  });

  function hac(name: string, hardware: string, extra = ''): string {
    const file = join(daemon.dir, `${name}.toml`);
    writeFileSync(file, `[spacecore]\nname = "${name}"\n[hardware]\ncores = 1\nmemory = 256\n${hardware}\n${extra}[hypervisor]\nprovider = "${o.provider}"\n[hypervisor.${o.table}]\nbinary = "${binary}"\n[network]\nmode = "none"\n`);
    return file;
  }

  const vm = (id: string) => vmById(daemon, id);

  test(`lifecycle on ${o.title}: a drive VM with an image attached boots, pauses, resumes, stops, starts, survives a daemon crash, is removed`, { skip }, async () => {
    await buildDemoRootfs({ output: join(daemon.dir, 'rootfs.ext4') });
    const ref = await pushBusyboxImage(registry!, 'NAME="Hypercore extra disk"\nID=hcdisk\n');
    // The image is attached as an extra disk: the daemon's qcow2 overlay on VMMs that read qcow2, else the image and a scratch disk.
    const spawn = daemon.cli(['spawn', '--hac', hac('life', `drive = "rootfs.ext4"\nref = "${ref}"`)]);
    assert.equal(spawn.code, 0, `${spawn.stderr}\n${daemon.log()}`);
    const id = lastLine(spawn.stdout);
    assert.equal(vm(id)?.provider, o.provider);
    await waitFor('the demo marker on the console', 60_000, () => (daemon.cli(['logs', id]).stdout.includes(DEMO_MARKER) ? true : undefined));
    assert.equal(daemon.cli(['pause', id]).code, 0);
    assert.equal(vm(id)?.state, 'paused');
    assert.equal(daemon.cli(['resume', id]).code, 0);
    assert.equal(vm(id)?.state, 'running');
    const stop = daemon.cli(['stop', id]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal(vm(id)?.state, 'stopped');
    assert.equal(daemon.cli(['start', id]).code, 0);
    const pid = vm(id)!.pid!;
    await daemon.kill9();
    await daemon.start();
    assert.equal(vm(id)?.pid, pid, 'adopted after the daemon crash');
    assert.equal(daemon.cli(['rm', '-f', id]).code, 0);
    assert.ok(!isAlive(pid));
    assert.deepEqual(daemon.strayProcesses(), []);
    assert.deepEqual(daemon.vmDirs(), []);
  });

  test(`agent on ${o.title}: an image VM answers over hybrid vsock, runs exec, writes to its scratch overlay, and powers off cleanly`, { skip }, async () => {
    const ref = await pushBusyboxImage(registry!, `NAME="Hypercore ${o.provider} test"\nID=hcvmm\n`);
    process.env['HYPERCORE_AGENT_TIMEOUT'] = '90';
    const spawn = daemon.cli(['spawn', '--hac', hac('agent', `ref = "${ref}"`, '[workload]\ncommand = ["sleep", "100000"]\n')]);
    assert.equal(spawn.code, 0, `${spawn.stderr}\n${daemon.log()}`);
    const id = lastLine(spawn.stdout);
    const exec = daemon.cli(['exec', id, '--', 'cat', '/etc/os-release']);
    assert.equal(exec.code, 0, exec.stderr);
    assert.match(exec.stdout, new RegExp(`Hypercore ${o.provider} test`));
    const write = daemon.cli(['exec', id, '--', 'sh', '-c', 'echo kept > /kept && cat /kept']);
    assert.equal(write.stdout, 'kept\n', 'the scratch overlay takes writes');
    const stop = daemon.cli(['stop', id]);
    assert.equal(stop.code, 0, stop.stderr);
    const stopped = vm(id)!;
    assert.equal(stopped.state, 'stopped');
    assert.equal(stopped.error, undefined, 'a clean power-off');
    assert.equal(daemon.cli(['rm', id]).code, 0);
  });

  test(`kernel-only VM on ${o.title}: an initramfs-only guest prints a line, ends (${o.guestEnd}), and the VM is stopped`, { skip }, async () => {
    const marker = `hypercore-kernel-only: hello from ${o.title}`;
    await writeHelloInitramfs(join(daemon.dir, 'hello.cpio.gz'), marker, o.guestEnd);
    const spawn = daemon.cli(['spawn', '--hac', hac('bare', `kernel = "${join(bootDir, o.kernel)}"\ninitrd = "hello.cpio.gz"`)]);
    assert.equal(spawn.code, 0, `${spawn.stderr}\n${daemon.log()}`);
    const id = lastLine(spawn.stdout);
    const stopped = await waitFor('the guest to end', 60_000, () => {
      const v = vm(id);
      return v?.state === 'stopped' || v?.state === 'failed' ? v : undefined;
    });
    assert.equal(stopped.state, 'stopped', stopped.error?.message);
    assert.match(daemon.cli(['logs', id]).stdout, new RegExp(marker));
    assert.equal(daemon.cli(['rm', id]).code, 0);
  });
}
