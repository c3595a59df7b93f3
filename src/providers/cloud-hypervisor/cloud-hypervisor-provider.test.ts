/**
 * Contract tests of the Cloud Hypervisor provider against the fake Cloud Hypervisor (the official
 * API document plus Cloud Hypervisor's rules): every call sequence the provider makes must pass,
 * every failure must leave nothing behind, and no disk may make the VMM open a file Hypercore did
 * not mean it to.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TtrpcAgentConnector } from '../../agent-client/agent-session.js';
import { ErrorCodes, HypercoreError } from '../../core/errors.js';
import type { VmDisk } from '../../core/image.js';
import type { Provider, VmPaths } from '../../core/ports.js';
import { createQcow2Overlay } from '../../images/vm-disks.js';
import { runCommand } from '../../system/command.js';
import { UnixHttpClient } from '../shared/unix-http.js';
import { launchDetached } from '../../system/detached.js';
import { isAlive, waitForExit } from '../../system/process.js';
import { assertNoProcessWith, held, startGuestAgent } from '../shared/testing/provider-test-kit.js';
import { CloudHypervisorProvider } from './cloud-hypervisor-provider.js';
import { writeFakeCloudHypervisor, type FakeRecord } from './testing/fake-cloud-hypervisor.js';
import { chFixture, chSpec, fakeCalls, fakeRecords, launchRequest, quietLogger, vmPaths, type ChFixture } from './testing/fixtures.js';

const provider = new CloudHypervisorProvider({ logger: quietLogger });

async function withFixture(vmId: string, fn: (fx: ChFixture) => Promise<void>): Promise<void> {
  const fx = await chFixture(vmId);
  try {
    await fn(fx);
  } finally {
    await rm(fx.dir, { recursive: true, force: true });
  }
}

function fake(fx: ChFixture, env: Record<string, string> = {}): string {
  return writeFakeCloudHypervisor(fx.dir, { FAKE_CH_RECORD_DIR: fx.records, ...env }, `cloud-hypervisor-${Math.random().toString(36).slice(2, 8)}`);
}

/** The calls of a VM's fake VMM as `METHOD operation`, without the polling GETs. */
async function changes(fx: ChFixture, vmId: string): Promise<string[]> {
  return (await fakeCalls(fx, vmId)).calls.filter((c) => !c.startsWith('GET ')).map((c) => c.replace('/api/v1/', ''));
}

async function createBody(fx: ChFixture, vmId: string): Promise<Record<string, unknown>> {
  return (await fakeCalls(fx, vmId)).bodies.get('PUT /api/v1/vm.create') as Record<string, unknown>;
}

/** The files the fake's boot opened (every launch of the VM). */
async function opened(fx: ChFixture, vmId: string): Promise<string[]> {
  return ((await fakeRecords(fx, vmId)) as unknown as FakeRecord[]).flatMap((r) => (r.event === 'opened' ? r.files : []));
}

async function waitFor(what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Nothing of the VM's runtime is left: no process of it, no file in its run dir. */
async function assertNothingLeft(paths: VmPaths, vmId: string): Promise<void> {
  assert.deepEqual(await readdir(paths.runDir), [], 'the run dir is empty');
  await assertNoProcessWith(`/${vmId}/`);
}

test('a drive VM: vm.create within the contract, vm.boot, status, pause, resume, the power button, clean exit', async () => {
  const vmId = 'ch0000000001';
  await withFixture(vmId, async (fx) => {
    const spec = chSpec('drive-vm', fake(fx));
    const { pid } = await provider.launch(launchRequest(fx, vmId, spec));
    try {
      assert.deepEqual(await provider.status(vmId, fx.paths, undefined), { status: 'running', pid });
      await provider.pause!(vmId, fx.paths, pid);
      assert.equal((await provider.status(vmId, fx.paths, pid)).status, 'paused');
      await provider.resume!(vmId, fx.paths, pid);
      assert.equal((await provider.status(vmId, fx.paths, pid)).status, 'running');
      const exited = new Promise((resolve) => provider.watch(vmId, fx.paths, pid, resolve));
      assert.equal(await provider.shutdown(vmId, fx.paths, pid, 5000), true);
      assert.deepEqual(await held(exited), { outcome: 'stopped', reason: 'the guest powered off' });
    } finally {
      await provider.kill(vmId, fx.paths, pid);
    }
    assert.deepEqual((await fakeCalls(fx, vmId)).violations, []);
    assert.deepEqual(await changes(fx, vmId), ['PUT vm.create', 'PUT vm.boot', 'PUT vm.pause', 'PUT vm.resume', 'PUT vm.power-button']);
    assert.deepEqual(await createBody(fx, vmId), {
      cpus: { boot_vcpus: 2, max_vcpus: 2 },
      memory: { size: 256 * 1024 * 1024 },
      payload: { kernel: fx.kernel, initramfs: fx.initrd, cmdline: 'console=ttyS0 hc.root=vda hc.rootflags=rw' },
      disks: [{ id: 'root', path: fx.disk, readonly: false, image_type: 'Raw' }],
      rng: { src: '/dev/urandom' },
      serial: { mode: 'Tty' },
      console: { mode: 'Off' },
    });
    // The serial console is Cloud Hypervisor's stdout, which goes to the console log.
    assert.match(await readFile(fx.paths.consoleLog, 'utf8'), /booting .*vmlinux with "console=ttyS0 /);
    await provider.cleanup(vmId, fx.paths);
    await assertNothingLeft(fx.paths, vmId);
  });
});

test('a guest that ignores the power button: vm.shutdown, then vmm.shutdown end Cloud Hypervisor; the console log keeps both boots', async () => {
  const vmId = 'ch0000000002';
  await withFixture(vmId, async (fx) => {
    const spec = chSpec('deaf-vm', fake(fx, { FAKE_CH_IGNORE_POWER_BUTTON: '1' }));
    for (let boot = 0; boot < 2; boot++) {
      const { pid } = await provider.launch(launchRequest(fx, vmId, spec));
      const started = Date.now();
      assert.equal(await provider.shutdown(vmId, fx.paths, pid, 600), true);
      assert.ok(Date.now() - started >= 600, 'the guest got its time after the power button');
      assert.equal(await isAlive(pid), false);
      await provider.cleanup(vmId, fx.paths);
    }
    assert.deepEqual((await fakeCalls(fx, vmId)).violations, []);
    const stop = ['PUT vm.power-button', 'PUT vm.shutdown', 'PUT vmm.shutdown'];
    assert.deepEqual(await changes(fx, vmId), ['PUT vm.create', 'PUT vm.boot', ...stop, 'PUT vm.create', 'PUT vm.boot', ...stop]);
    const text = await readFile(fx.paths.consoleLog, 'utf8');
    assert.equal(text.match(/fake cloud-hypervisor v51\.0: booting/g)?.length, 2, text);
    await assertNothingLeft(fx.paths, vmId);
  });
});

test("the VMM's own log, which a guest can make it write, goes only to the console log the daemon caps", async () => {
  const vmId = 'ch0000000009';
  await withFixture(vmId, async (fx) => {
    const { pid } = await provider.launch(launchRequest(fx, vmId, chSpec('chatty', fake(fx, { FAKE_CH_GUEST_WARNINGS: '200' }))));
    try {
      assert.deepEqual((await readdir(fx.paths.runDir)).sort(), ['cloud-hypervisor.pid', 'cloud-hypervisor.sock'], 'no log file of its own in the run dir');
      assert.equal((await readFile(fx.paths.consoleLog, 'utf8')).match(/guest-provoked warning/g)?.length, 200);
    } finally {
      await provider.kill(vmId, fx.paths, pid);
    }
    await provider.cleanup(vmId, fx.paths);
    await assertNothingLeft(fx.paths, vmId);
  });
});

test('an image VM: raw image and scratch disks with serials and stated formats, vsock, network; the agent answers over hybrid vsock', async () => {
  const vmId = 'ch0000000003';
  await withFixture(vmId, async (fx) => {
    const agent = await startGuestAgent(fx.dir);
    const image = join(fx.dir, 'image.ext4');
    const scratch = join(fx.dir, 'scratch.raw');
    await writeFile(image, Buffer.alloc(4096));
    await writeFile(scratch, Buffer.alloc(4096));
    const spec = chSpec('image-vm', fake(fx, { FAKE_CH_AGENT_SOCKET: agent.socket }));
    const network = { tap: 'hctap0', mac: '02:c4:00:00:00:03', ip: '10.77.0.3', prefixLength: 24, gateway: '10.77.0.1', dns: ['10.77.0.1'] };
    const { pid } = await provider.launch(
      launchRequest(fx, vmId, spec, {
        paths: fx.paths,
        rootDisk: { path: fx.disk, readOnly: true },
        disks: [
          { name: 'image', path: image, format: 'raw', readOnly: true },
          { name: 'scratch', path: scratch, format: 'raw', readOnly: false },
        ],
        agent: true,
        network,
        boot: { kernel: fx.kernel, initrd: fx.initrd, args: ['hc.root=vda', 'hc.rootflags=ro', 'hc.agent=vsock:1024'] },
      }),
    );
    try {
      const endpoint = provider.agentEndpoint(vmId, fx.paths);
      assert.deepEqual(endpoint, { kind: 'hybrid-vsock', path: join(fx.paths.runDir, 'vsock.sock'), port: 1024 });
      const session = await new TtrpcAgentConnector().connect(endpoint, { timeoutMs: 5000 });
      assert.ok((await session.hello()).agentVersion);
      session.close();
    } finally {
      await provider.kill(vmId, fx.paths, pid);
      agent.close();
    }
    assert.deepEqual((await fakeCalls(fx, vmId)).violations, []);
    const body = await createBody(fx, vmId);
    assert.deepEqual(body['disks'], [
      { id: 'root', path: fx.disk, readonly: true, image_type: 'Raw' },
      { id: 'image', path: image, readonly: true, serial: 'image', image_type: 'Raw' },
      { id: 'scratch', path: scratch, readonly: false, serial: 'scratch', image_type: 'Raw' },
    ]);
    assert.deepEqual(body['net'], [{ id: 'net0', tap: 'hctap0', mac: '02:c4:00:00:00:03' }]);
    assert.deepEqual(body['vsock'], { cid: 3, socket: join(fx.paths.runDir, 'vsock.sock') });
    assert.match((body['payload'] as { cmdline: string }).cmdline, /^console=ttyS0 hc\.root=vda hc\.rootflags=ro hc\.agent=vsock:1024$/);
    await provider.cleanup(vmId, fx.paths);
    await assertNothingLeft(fx.paths, vmId);
  });
});

/** A raw "block image" and a qcow2 overlay over it, as the daemon makes them for a drive VM with an image. */
async function overlayOver(fx: ChFixture, base: string, name = 'image.qcow2', backing = base): Promise<VmDisk> {
  const overlay = join(fx.dir, name);
  await createQcow2Overlay(base, overlay, 1024 * 1024);
  return { name: 'image', path: overlay, format: 'qcow2', readOnly: false, backing };
}

test("a drive VM with an image: the daemon's qcow2 overlay is opened with backing_files, and its block image is the only backing file followed", async () => {
  const vmId = 'ch0000000004';
  await withFixture(vmId, async (fx) => {
    const base = join(fx.dir, 'block.ext4');
    await writeFile(base, Buffer.alloc(1024 * 1024));
    const disk = await overlayOver(fx, base);
    const { pid } = await provider.launch(launchRequest(fx, vmId, chSpec('overlay-vm', fake(fx)), { disks: [disk] }));
    await provider.kill(vmId, fx.paths, pid);
    assert.deepEqual((await fakeCalls(fx, vmId)).violations, []);
    assert.deepEqual((await createBody(fx, vmId))['disks'], [
      { id: 'root', path: fx.disk, readonly: false, image_type: 'Raw' },
      { id: 'image', path: disk.path, readonly: false, serial: 'image', image_type: 'Qcow2', backing_files: true },
    ]);
    assert.deepEqual(await opened(fx, vmId), [fx.kernel, fx.initrd, fx.disk, disk.path, base]);
    await provider.cleanup(vmId, fx.paths);
    await assertNothingLeft(fx.paths, vmId);
  });
});

test('attack: an overlay naming another backing file, one with no record of its backing, or one whose backing is not raw is refused before any VMM starts', async () => {
  const vmId = 'ch0000000005';
  await withFixture(vmId, async (fx) => {
    const binary = fake(fx);
    const base = join(fx.dir, 'block.ext4');
    await writeFile(base, Buffer.alloc(1024 * 1024));
    const secret = join(fx.dir, 'host-secret');
    await writeFile(secret, 'not for guests\n');
    // The overlay was swapped for one over a host file, while the record still names the block image.
    const swapped = { ...(await overlayOver(fx, secret, 'swapped.qcow2')), backing: base };
    await assert.rejects(provider.launch(launchRequest(fx, vmId, chSpec('swap', binary), { disks: [swapped] })), (err: unknown) => {
      assert.ok(err instanceof HypercoreError && err.code === ErrorCodes.invalidArgument, String(err));
      assert.equal(err.message, `the overlay ${swapped.path} names the backing file ${secret}, not the image's block image ${base} it was made over; refusing to let Cloud Hypervisor open it`);
      return true;
    });
    // A qcow2 disk with a backing file that Hypercore did not make (no recorded backing).
    const { backing: _b, ...unrecorded } = await overlayOver(fx, base, 'unrecorded.qcow2');
    await assert.rejects(provider.launch(launchRequest(fx, vmId, chSpec('unrecorded', binary), { disks: [unrecorded] })), /unrecorded\.qcow2 names a backing file \(.*block\.ext4\); Cloud Hypervisor is allowed to follow backing files only of the overlays Hypercore made/);
    // The right name, but declared qcow2: Cloud Hypervisor would parse the block image's content as a qcow2 header.
    const nested = join(fx.dir, 'nested.qcow2');
    await runCommand('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', '-u', nested, '1M']);
    await assert.rejects(provider.launch(launchRequest(fx, vmId, chSpec('nested', binary), { disks: [{ name: 'image', path: nested, format: 'qcow2', readOnly: false, backing: base }] })), /declares its backing file .*block\.ext4 as qcow2, not raw/);
    assert.deepEqual(await fakeRecords(fx, vmId), [], 'no VMM was started');
    assert.deepEqual(await readdir(fx.paths.runDir), []);
  });
});

test('attack: a qcow2 header the guest wrote into its raw scratch disk is not read as qcow2 at the next boot', async () => {
  const vmId = 'ch0000000006';
  await withFixture(vmId, async (fx) => {
    const secret = join(fx.dir, 'host-secret');
    await writeFile(secret, 'not for guests\n');
    const scratch = join(fx.dir, 'scratch.raw');
    // What a guest can write to sector 0 of a raw disk: a qcow2 header naming a host file as backing.
    await createQcow2Overlay(secret, join(fx.dir, 'crafted.qcow2'), 1024 * 1024);
    await copyFile(join(fx.dir, 'crafted.qcow2'), scratch);
    const handle = await open(scratch, 'r+');
    await handle.truncate(1024 * 1024);
    await handle.close();
    const { pid } = await provider.launch(launchRequest(fx, vmId, chSpec('crafted', fake(fx)), { disks: [{ name: 'scratch', path: scratch, format: 'raw', readOnly: false }] }));
    await provider.kill(vmId, fx.paths, pid);
    assert.deepEqual((await fakeCalls(fx, vmId)).violations, []);
    assert.ok(!(await opened(fx, vmId)).includes(secret), 'the host file was not opened');
    assert.deepEqual(((await createBody(fx, vmId))['disks'] as { image_type?: string }[]).map((d) => d.image_type), ['Raw', 'Raw']);
    await provider.cleanup(vmId, fx.paths);
  });
});

test('a kernel-only VM: no disk, no vsock; the guest powering off ends the VMM as "stopped"', async () => {
  const vmId = 'ch0000000007';
  await withFixture(vmId, async (fx) => {
    const spec = chSpec('kernel-vm', fake(fx, { FAKE_CH_GUEST_LIFETIME_MS: '300' }));
    const { rootDisk: _root, ...req } = launchRequest(fx, vmId, spec, { paths: fx.paths, boot: { kernel: fx.kernel, initrd: fx.initrd, args: [] } });
    const { pid } = await provider.launch(req);
    const exit = await held(new Promise((resolve) => provider.watch(vmId, fx.paths, pid, resolve)));
    assert.deepEqual(exit, { outcome: 'stopped', reason: 'the guest powered off' });
    assert.deepEqual((await fakeCalls(fx, vmId)).violations, []);
    const body = await createBody(fx, vmId);
    assert.equal(body['disks'], undefined);
    assert.equal(body['vsock'], undefined);
    await provider.cleanup(vmId, fx.paths);
    await assertNothingLeft(fx.paths, vmId);
  });
});

test('adoption: status finds a running Cloud Hypervisor by its pidfile; one with no VM, or a VM never booted, is ended, not adopted', async () => {
  const vmId = 'ch0000000008';
  await withFixture(vmId, async (fx) => {
    const binary = fake(fx);
    const { pid } = await provider.launch(launchRequest(fx, vmId, chSpec('adopt-vm', binary), { paths: fx.paths }));
    assert.deepEqual(await provider.status(vmId, fx.paths, undefined), { status: 'running', pid });
    await provider.kill(vmId, fx.paths, undefined);
    assert.deepEqual(await provider.status(vmId, fx.paths, undefined), { status: 'gone' });
    await provider.cleanup(vmId, fx.paths);

    // Launches cut short by the daemon dying: before vm.create, and between vm.create and vm.boot.
    const socket = join(fx.paths.runDir, 'cloud-hypervisor.sock');
    for (const create of [false, true]) {
      const half = await launchDetached({ file: binary, args: ['--api-socket', `path=${socket}`], stdoutPath: fx.paths.consoleLog, stderrPath: join(fx.dir, 'half.stderr'), pidFile: join(fx.paths.runDir, 'cloud-hypervisor.pid') });
      const api = new UnixHttpClient(socket, { timeoutMs: 1000 });
      await waitFor('the half-launched VMM to answer', async () => (await api.call('GET', '/api/v1/vmm.ping').catch(() => undefined))?.status === 200);
      if (create) assert.equal((await api.call('PUT', '/api/v1/vm.create', { payload: { kernel: fx.kernel } })).status, 204);
      assert.deepEqual(await provider.status(vmId, fx.paths, undefined), { status: 'gone' });
      assert.equal(await waitForExit(half.pid, 2000), true);
      await provider.cleanup(vmId, fx.paths);
    }
    assert.deepEqual((await fakeCalls(fx, vmId)).violations, []);
  });
});

const steps: [string, readonly ('refused' | 'dies')[]][] = [
  ['GET vmm.ping', ['dies']],
  ['PUT vm.create', ['refused', 'dies']],
  ['PUT vm.boot', ['refused', 'dies']],
];

for (const [step, modes] of steps) {
  test(`failure at ${step}: ${modes.join(' or ')}, the launch fails naming it and leaves nothing`, async () => {
    const first = `chfail${steps.findIndex(([s]) => s === step)}`;
    await withFixture(first, async (fx) => {
      for (const mode of modes) {
        const vmId = `${first}${mode[0]}`;
        const paths = await vmPaths(fx, vmId);
        const spec = chSpec('fail-vm', fake(fx, mode === 'refused' ? { FAKE_CH_FAIL: step } : { FAKE_CH_DIE: step }));
        await writeFile(paths.consoleLog, 'an earlier boot: reboot: Power down\n');
        await assert.rejects(provider.launch(launchRequest(fx, vmId, spec, { paths })), (err: unknown) => {
          assert.ok(err instanceof HypercoreError && err.code === ErrorCodes.providerFailed, String(err));
          assert.match(err.message, /Cloud Hypervisor failed to create VM fail-vm/);
          assert.doesNotMatch(err.message, /an earlier boot/, "the error quotes only this launch's output");
          if (mode === 'refused') assert.match(err.message, new RegExp(`refused ${step} \\(HTTP 500\\): injected failure`));
          else assert.match(err.message, /dying on|exited before its API socket answered/);
          return true;
        });
        assert.ok((await fakeRecords(fx, vmId)).some((r) => r.event === 'start'), 'the fake VMM ran');
        await assertNothingLeft(paths, vmId);
        assert.deepEqual((await fakeCalls(fx, vmId)).violations, []);
      }
    });
  });
}

test('bad input: a kernel that is neither bzImage nor ELF, an old version, a missing binary: clear errors, nothing launched', async () => {
  const vmId = 'chbad';
  await withFixture(vmId, async (fx) => {
    const binary = fake(fx);
    const junk = join(fx.dir, 'kernel.txt');
    await writeFile(junk, 'not a kernel\n');
    await assert.rejects(provider.launch(launchRequest(fx, vmId, chSpec('junk', binary), { paths: fx.paths, boot: { kernel: junk, args: [] } })), /kernel\.txt is neither a bzImage nor an ELF vmlinux, which is what Cloud Hypervisor boots/);
    const old = fake(fx, { FAKE_CH_VERSION: 'v50.0' });
    await assert.rejects(provider.launch(launchRequest(fx, vmId, chSpec('old', old), { paths: fx.paths })), (err: unknown) => {
      assert.ok(err instanceof HypercoreError && err.code === ErrorCodes.providerUnavailable);
      assert.match(err.message, /is Cloud Hypervisor v50\.0; Hypercore needs v51\.0 or newer/);
      return true;
    });
    assert.match((await provider.describe(chSpec('old', old))).detail, /v50\.0/);
    await assert.rejects(provider.launch(launchRequest(fx, vmId, chSpec('missing', join(fx.dir, 'no-such-ch')), { paths: fx.paths })), /Cloud Hypervisor is not usable: .*no-such-ch .*not found/);
    assert.equal((await provider.describe(chSpec('missing', join(fx.dir, 'nope')))).usable, false);
    const longVm = `chlong${'x'.repeat(120)}`;
    await assert.rejects(provider.launch(launchRequest(fx, longVm, chSpec('long', binary), { paths: { ...fx.paths, runDir: join(fx.dir, longVm) } })), /is longer than 107 bytes; use a shorter run directory/);
    assert.deepEqual(await fakeRecords(fx, vmId), []);
    assert.deepEqual(await readdir(fx.paths.runDir), []);
  });
});

test('describe: version and KVM; an unusable /dev/kvm makes it unusable for auto', async () => {
  await withFixture('chdescribe', async (fx) => {
    const binary = fake(fx, { FAKE_CH_VERSION: 'v52.0-14-g1a2b3c4' });
    const noKvm = new CloudHypervisorProvider({ logger: quietLogger, kvmDevice: join(fx.dir, 'no-kvm') });
    assert.deepEqual(await noKvm.describe(chSpec('d', binary)), { name: 'cloud-hypervisor', usable: false, version: 'v52.0-14-g1a2b3c4', detail: `Cloud Hypervisor needs KVM, and ${join(fx.dir, 'no-kvm')} cannot be opened for reading and writing` });
    const kvm = join(fx.dir, 'kvm');
    await writeFile(kvm, '');
    assert.deepEqual(await new CloudHypervisorProvider({ logger: quietLogger, kvmDevice: kvm }).describe(chSpec('d', binary)), { name: 'cloud-hypervisor', usable: true, version: 'v52.0-14-g1a2b3c4', detail: `KVM (${kvm})` });
  });
});

test('capabilities: pause and resume; no snapshots, so neither saveSnapshot nor restore', () => {
  assert.deepEqual(provider.capabilities, { pause: true, snapshot: false, agentChannels: ['vsock'], diskFormats: ['raw', 'qcow2'], hotplug: false, kernelFormats: ['bzimage', 'elf'] });
  const port: Provider = provider;
  assert.equal(port.saveSnapshot, undefined);
  assert.equal(port.restore, undefined);
  assert.equal(typeof provider.pause, 'function');
  assert.equal(typeof provider.resume, 'function');
});
