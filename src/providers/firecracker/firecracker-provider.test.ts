/**
 * Contract tests of the Firecracker provider against the fake Firecracker (the official API
 * document plus Firecracker's ordering rules): every call sequence the provider makes must pass,
 * and every failure must leave nothing behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { listenUnix } from '../../agent/channel.js';
import { registerAgentService } from '../../agent/service.js';
import { TtrpcAgentConnector } from '../../agent-client/agent-session.js';
import { ErrorCodes, HypercoreError } from '../../core/errors.js';
import { isAlive, waitForExit } from '../../system/process.js';
import { TtrpcServer } from '../../ttrpc/index.js';
import { FirecrackerProvider } from './firecracker-provider.js';
import { writeFakeFirecracker } from './testing/fake-firecracker.js';
import { fakeCalls, fakeRecords, fcFixture, fcSpec, launchRequest, quietLogger, type FcFixture } from './testing/fixtures.js';

const provider = new FirecrackerProvider({ logger: quietLogger });

async function withFixture(fn: (fx: FcFixture) => Promise<void>): Promise<void> {
  const fx = await fcFixture();
  try {
    await fn(fx);
  } finally {
    await rm(fx.dir, { recursive: true, force: true });
  }
}

/** Waits for `promise` while keeping the event loop alive (the pid watcher's timer does not). */
async function held<T>(promise: Promise<T>, ms = 10_000): Promise<T> {
  const timer = setTimeout(() => undefined, ms);
  try {
    return await promise;
  } finally {
    clearTimeout(timer);
  }
}

function fake(fx: FcFixture, env: Record<string, string> = {}): string {
  return writeFakeFirecracker(fx.dir, { FAKE_FC_RECORD_DIR: fx.records, ...env }, `firecracker-${Object.keys(env).length}-${Math.random().toString(36).slice(2, 8)}`);
}

/** Nothing of the VM's runtime is left: no process of it, no file in its run dir. */
async function assertNothingLeft(fx: FcFixture, vmId: string): Promise<void> {
  const starts = (await fakeRecords(fx, vmId)).filter((r) => r.event === 'start');
  assert.ok(starts.length > 0, 'the fake VMM ran');
  assert.deepEqual(await readdir(fx.paths.runDir), [], 'the run dir is empty');
  const pids = (await readdir('/proc')).filter((p) => /^\d+$/.test(p));
  for (const pid of pids) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(vmId) && (await isAlive(Number(pid)))) assert.fail(`process ${pid} of VM ${vmId} is still running: ${cmdline.replaceAll('\0', ' ')}`);
  }
}

test('a drive VM: the configuration passes the contract, then status, pause, resume, Ctrl-Alt-Del, clean exit', async () => {
  await withFixture(async (fx) => {
    const vmId = 'fc0000000001';
    const spec = fcSpec('drive-vm', fake(fx, { FAKE_FC_VERSION: '1.10.1' }));
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
    const { calls, violations, bodies } = await fakeCalls(fx, vmId);
    assert.deepEqual(violations, []);
    const configuration = calls.filter((c) => !c.startsWith('GET '));
    assert.deepEqual(configuration, ['PUT /machine-config', 'PUT /boot-source', 'PUT /drives/root', 'PUT /entropy', 'PUT /actions', 'PATCH /vm', 'PATCH /vm', 'PUT /actions']);
    const boot = bodies.get('PUT /boot-source') as { boot_args: string; initrd_path: string };
    assert.equal(boot.initrd_path, fx.initrd);
    assert.match(boot.boot_args, /^console=ttyS0 reboot=k panic=1 .*hc\.poweroff=reboot hc\.root=vda hc\.rootflags=rw$/);
    assert.doesNotMatch(boot.boot_args, /nomodule|8250\.nr_uarts/);
    // Before 1.14 the console is Firecracker's stdout, which goes to the console log.
    assert.match(await readFile(fx.paths.consoleLog, 'utf8'), /booting .*vmlinux/);
    await provider.cleanup(vmId, fx.paths);
    await assertNothingLeft(fx, vmId);
  });
});

test('the console log keeps every boot: a second launch appends to it, on every version', async () => {
  await withFixture(async (fx) => {
    const vmId = 'fc0000000002';
    // 1.14 has PUT /serial, which opens the file without O_APPEND (from its start); stdout is appended.
    const spec = fcSpec('serial-vm', fake(fx, { FAKE_FC_VERSION: '1.14.0' }));
    for (let boot = 0; boot < 2; boot++) {
      const { pid } = await provider.launch(launchRequest(fx, vmId, spec));
      await provider.kill(vmId, fx.paths, pid);
      await provider.cleanup(vmId, fx.paths);
    }
    const { calls, violations } = await fakeCalls(fx, vmId);
    assert.deepEqual(violations, []);
    assert.ok(!calls.includes('PUT /serial'));
    const text = await readFile(fx.paths.consoleLog, 'utf8');
    assert.equal(text.match(/fake firecracker 1\.14\.0: booting/g)?.length, 2, text);
  });
});

test('an image VM: raw image and scratch drives named for the guest, vsock, network; the agent answers over hybrid vsock', async () => {
  await withFixture(async (fx) => {
    const vmId = 'fc0000000003';
    const agentSocket = join(fx.dir, 'agent.sock');
    const server = new TtrpcServer();
    registerAgentService(server, { powerOff: () => undefined });
    const listener = await listenUnix(server, agentSocket);
    const image = join(fx.dir, 'image.ext4');
    const scratch = join(fx.dir, 'scratch.raw');
    await writeFile(image, Buffer.alloc(4096));
    await writeFile(scratch, Buffer.alloc(4096));
    const spec = fcSpec('image-vm', fake(fx, { FAKE_FC_AGENT_SOCKET: agentSocket }));
    const network = { tap: 'hctap0', mac: '02:fc:00:00:00:03', ip: '10.77.0.3', prefixLength: 24, gateway: '10.77.0.1', dns: ['10.77.0.1'] };
    const { pid } = await provider.launch(
      launchRequest(fx, vmId, spec, {
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
      listener.close();
    }
    const { calls, violations, bodies } = await fakeCalls(fx, vmId);
    assert.deepEqual(violations, []);
    assert.deepEqual(
      calls.filter((c) => c.startsWith('PUT')),
      ['PUT /machine-config', 'PUT /boot-source', 'PUT /drives/root', 'PUT /drives/image', 'PUT /drives/scratch', 'PUT /network-interfaces/eth0', 'PUT /vsock', 'PUT /entropy', 'PUT /actions'],
    );
    assert.deepEqual(bodies.get('PUT /drives/image'), { drive_id: 'image', path_on_host: image, is_root_device: false, is_read_only: true });
    assert.deepEqual(bodies.get('PUT /network-interfaces/eth0'), { iface_id: 'eth0', host_dev_name: 'hctap0', guest_mac: '02:fc:00:00:00:03' });
    assert.deepEqual(bodies.get('PUT /vsock'), { guest_cid: 3, uds_path: join(fx.paths.runDir, 'vsock.sock') });
    assert.match((bodies.get('PUT /boot-source') as { boot_args: string }).boot_args, / hc\.disks=image:vdb,scratch:vdc hc\.root=vda hc\.rootflags=ro hc\.agent=vsock:1024$/);
    await provider.cleanup(vmId, fx.paths);
    await assertNothingLeft(fx, vmId);
  });
});

test('a kernel-only VM: no drive, no vsock; the guest powering off ends the VMM as "stopped"', async () => {
  await withFixture(async (fx) => {
    const vmId = 'fc0000000004';
    const spec = fcSpec('kernel-vm', fake(fx, { FAKE_FC_GUEST_LIFETIME_MS: '300' }));
    const { rootDisk: _root, ...req } = launchRequest(fx, vmId, spec, { boot: { kernel: fx.kernel, initrd: fx.initrd, args: [] } });
    const { pid } = await provider.launch(req);
    const exit = await held(new Promise((resolve) => provider.watch(vmId, fx.paths, pid, resolve)));
    assert.deepEqual(exit, { outcome: 'stopped', reason: 'the guest powered off' });
    const { calls, violations } = await fakeCalls(fx, vmId);
    assert.deepEqual(violations, []);
    assert.ok(!calls.some((c) => c.startsWith('PUT /drives') || c === 'PUT /vsock'));
    await provider.cleanup(vmId, fx.paths);
    await assertNothingLeft(fx, vmId);
  });
});

test('adoption: status finds a running Firecracker by its pidfile; one never started is ended, not adopted', async () => {
  await withFixture(async (fx) => {
    const vmId = 'fc0000000005';
    const binary = fake(fx);
    const { pid } = await provider.launch(launchRequest(fx, vmId, fcSpec('adopt-vm', binary)));
    assert.deepEqual(await provider.status(vmId, fx.paths, undefined), { status: 'running', pid });
    await provider.kill(vmId, fx.paths, undefined);
    assert.deepEqual(await provider.status(vmId, fx.paths, undefined), { status: 'gone' });
    await provider.cleanup(vmId, fx.paths);

    // A launch cut short before InstanceStart (the daemon died while configuring): found, ended, reported gone.
    const { launchDetached } = await import('../../system/detached.js');
    const half = await launchDetached({ file: binary, args: ['--api-sock', join(fx.paths.runDir, 'firecracker.sock'), '--id', vmId], stdoutPath: fx.paths.consoleLog, stderrPath: join(fx.dir, 'half.stderr'), pidFile: join(fx.paths.runDir, 'firecracker.pid') });
    for (let i = 0; i < 100 && !existsSync(join(fx.paths.runDir, 'firecracker.sock')); i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(await provider.status(vmId, fx.paths, undefined), { status: 'gone' });
    assert.equal(await waitForExit(half.pid, 2000), true);
    await provider.cleanup(vmId, fx.paths);
    assert.deepEqual((await fakeCalls(fx, vmId)).violations, []);
  });
});

const configurationSteps = ['GET /version', 'PUT /machine-config', 'PUT /boot-source', 'PUT /drives/root', 'PUT /entropy', 'PUT /actions'];

for (const step of configurationSteps) {
  test(`failure at ${step}: refused (400) or the VMM dying, the launch fails naming it and leaves nothing`, async () => {
    await withFixture(async (fx) => {
      for (const [mode, env] of [['refused', { FAKE_FC_FAIL: step }], ['dies', { FAKE_FC_DIE: step }]] as const) {
        const vmId = `fcfail${configurationSteps.indexOf(step)}${mode === 'dies' ? 'd' : 'r'}`;
        const spec = fcSpec('fail-vm', fake(fx, env));
        await assert.rejects(provider.launch(launchRequest(fx, vmId, spec)), (err: unknown) => {
          assert.ok(err instanceof HypercoreError && err.code === ErrorCodes.providerFailed, String(err));
          assert.match(err.message, /Firecracker failed to configure VM fail-vm/);
          if (mode === 'refused') assert.match(err.message, new RegExp(`refused ${step.replace('/', '\\/')} .*injected failure`));
          else assert.match(err.message, /dying on/);
          return true;
        });
        await assertNothingLeft(fx, vmId);
        assert.deepEqual((await fakeCalls(fx, vmId)).violations, []);
      }
    });
  });
}

test('bad input: bzImage, qcow2, an old version, a missing binary: clear errors, nothing launched', async () => {
  await withFixture(async (fx) => {
    const binary = fake(fx);
    const bz = join(fx.dir, 'vmlinuz');
    const image = Buffer.alloc(0x400);
    image.write('HdrS', 0x202, 'latin1');
    await writeFile(bz, image);
    await assert.rejects(provider.launch(launchRequest(fx, 'fcbad1', fcSpec('bz', binary), { boot: { kernel: bz, args: [] } })), /vmlinuz is a compressed bzImage; Firecracker boots only an uncompressed ELF vmlinux/);
    const qcow = join(fx.dir, 'disk.qcow2');
    await writeFile(qcow, Buffer.concat([Buffer.from('QFI\xfb', 'latin1'), Buffer.alloc(512)]));
    await assert.rejects(provider.launch(launchRequest(fx, 'fcbad2', fcSpec('q', binary), { rootDisk: { path: qcow, readOnly: false } })), /disk\.qcow2 is qcow2; Firecracker reads raw disk images only/);
    await assert.rejects(provider.launch(launchRequest(fx, 'fcbad3', fcSpec('q', binary), { disks: [{ name: 'image', path: fx.disk, format: 'qcow2', readOnly: false }] })), /is qcow2/);
    const old = fake(fx, { FAKE_FC_VERSION: '1.7.0' });
    await assert.rejects(provider.launch(launchRequest(fx, 'fcbad4', fcSpec('old', old))), (err: unknown) => {
      assert.ok(err instanceof HypercoreError && err.code === ErrorCodes.providerUnavailable);
      assert.match(err.message, /is Firecracker 1\.7\.0; Hypercore needs 1\.8 or newer/);
      return true;
    });
    assert.match((await provider.describe(fcSpec('old', old))).detail, /1\.7\.0/);
    await assert.rejects(provider.launch(launchRequest(fx, 'fcbad5', fcSpec('missing', join(fx.dir, 'no-such-firecracker')))), /Firecracker is not usable: .*no-such-firecracker .*not found/);
    assert.equal((await provider.describe(fcSpec('missing', join(fx.dir, 'nope')))).usable, false);
    // None of them started a VMM or left a file.
    for (const id of ['fcbad1', 'fcbad2', 'fcbad3', 'fcbad4', 'fcbad5']) assert.deepEqual(await fakeRecords(fx, id), []);
    assert.deepEqual(await readdir(fx.paths.runDir), []);
  });
});

test('describe: version and KVM; an unusable /dev/kvm makes it unusable for auto', async () => {
  await withFixture(async (fx) => {
    const binary = fake(fx, { FAKE_FC_VERSION: '1.12.0' });
    const noKvm = new FirecrackerProvider({ logger: quietLogger, kvmDevice: join(fx.dir, 'no-kvm') });
    assert.deepEqual(await noKvm.describe(fcSpec('d', binary)), { name: 'firecracker', usable: false, version: '1.12.0', detail: `Firecracker needs KVM, and ${join(fx.dir, 'no-kvm')} cannot be opened for reading and writing` });
    const kvm = join(fx.dir, 'kvm');
    await writeFile(kvm, '');
    assert.deepEqual(await new FirecrackerProvider({ logger: quietLogger, kvmDevice: kvm }).describe(fcSpec('d', binary)), { name: 'firecracker', usable: true, version: '1.12.0', detail: `KVM (${kvm})` });
  });
});

test('why Firecracker ended, from the console: a reboot is a power-off, a panic a failure, neither a crash or kill', async () => {
  await withFixture(async (fx) => {
    const { describeExit } = await import('./firecracker-provider.js');
    await writeFile(fx.paths.consoleLog, '[    1.0] reboot: Restarting system\n');
    assert.deepEqual(await describeExit(fx.paths), { outcome: 'stopped', reason: 'the guest powered off' });
    await writeFile(fx.paths.consoleLog, '[    1.0] Kernel panic - not syncing: Attempted to kill init!\n[    2.0] reboot: Restarting system\n');
    assert.equal((await describeExit(fx.paths)).outcome, 'failed');
    await writeFile(fx.paths.consoleLog, 'hypercore-demo: guest is up\n');
    assert.match((await describeExit(fx.paths)).reason, /exited without the guest powering off/);
  });
});
