/**
 * The Cloud Hypervisor provider driven by a real hypercored and CLI against the fake Cloud
 * Hypervisor (the official OpenAPI document plus Cloud Hypervisor's state rules; no KVM needed):
 * a drive VM with an image (the daemon's qcow2 overlay over the image's block image) through
 * spawn, pause, resume, stop, start, a daemon crash and adoption, and rm; an overlay swapped for one
 * over a host file; a kernel-only VM; bad input. Every API call of every launch must pass the
 * contract, and nothing may be left behind.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFakeCloudHypervisor, type FakeRecord } from '../../src/providers/cloud-hypervisor/testing/fake-cloud-hypervisor.js';
import { startRegistry, type RegistryProcess } from '../../src/images/registry/testing/registry-process.js';
import { pushBusyboxImage } from './busybox-image.js';
import { isAlive, lastLine, TestDaemon, waitFor } from './harness.js';
import { assertSpawnsFailCleanly, FakeVmmCallLog, providerHac, spawnPauseResumeStopStart, vmById, type FailingSpawn } from './vmm-contract-kit.js';

const daemon = new TestDaemon('hc-e2e-chc-');
const records = join(daemon.dir, 'records');
let registry: RegistryProcess | undefined;
let imageRef = '';

before(async () => {
  mkdirSync(records, { recursive: true });
  // An ELF "kernel" and a raw drive: the fake VMM opens them as Cloud Hypervisor would, and boots nothing.
  writeFileSync(join(daemon.dir, 'vmlinux'), Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]), Buffer.alloc(4096)]));
  writeFileSync(join(daemon.dir, 'drive.raw'), Buffer.alloc(1024 * 1024));
  writeFileSync(join(daemon.dir, 'kernel.txt'), 'not a kernel\n');
  registry = await startRegistry();
  imageRef = await pushBusyboxImage(registry, 'NAME="Hypercore cloud-hypervisor test"\nID=hcch\n');
  await daemon.start();
});

after(async () => {
  await daemon.cleanup();
  await registry?.stop();
});

const log = new FakeVmmCallLog(records);
const records_ = (id: string) => log.records<FakeRecord>(id);
const calls = (id: string) => log.changes(id, '/api/v1/');
const violations = () => log.violations();
const vm = (id: string) => vmById(daemon, id);

function hac(name: string, binary: string, hardware: string): string {
  return providerHac(daemon, name, 'cloud-hypervisor', 'cloud_hypervisor', binary, hardware);
}

function fake(name: string, env: Record<string, string> = {}): string {
  return writeFakeCloudHypervisor(daemon.dir, { FAKE_CH_RECORD_DIR: records, ...env }, name);
}

function createdDisks(id: string): Record<string, unknown>[][] {
  return log.calls(id).flatMap((c) => (c.path === '/api/v1/vm.create' ? [(c.body as { disks: Record<string, unknown>[] }).disks] : []));
}

const imageHardware = () => `kernel = "vmlinux"\ndrive = "drive.raw"\nref = "${imageRef}"`;

test("a drive VM with an image on Cloud Hypervisor: spawn, pause, resume, stop, start, daemon crash and adoption, rm; the overlay's backing file is the image's block image; every call within the contract", async () => {
  const { id, pid: secondPid } = spawnPauseResumeStopStart(daemon, hac('ch-drive', fake('cloud-hypervisor'), imageHardware()), 'cloud-hypervisor');

  // A crash of the daemon: the VMM survives and the restarted daemon adopts it, paused or not.
  assert.equal(daemon.cli(['pause', id]).code, 0);
  await daemon.kill9();
  assert.ok(isAlive(secondPid));
  await daemon.start();
  const found = vm(id)!;
  assert.equal(found.state, 'paused');
  assert.equal(found.pid, secondPid);
  assert.equal(daemon.cli(['resume', id]).code, 0);

  const rm = daemon.cli(['rm', '-f', id]);
  assert.equal(rm.code, 0, rm.stderr);
  assert.equal(vm(id), undefined);
  assert.ok(!isAlive(secondPid));

  const launch = ['PUT vm.create', 'PUT vm.boot'];
  assert.deepEqual(calls(id), [...launch, 'PUT vm.pause', 'PUT vm.resume', 'PUT vm.power-button', ...launch, 'PUT vm.pause', 'PUT vm.resume']);
  const [root, image] = createdDisks(id)[0]!;
  assert.deepEqual(root, { id: 'root', path: join(daemon.dir, 'drive.raw'), readonly: false, image_type: 'Raw' });
  assert.deepEqual({ ...image, path: undefined }, { id: 'image', path: undefined, readonly: false, serial: 'image', image_type: 'Qcow2', backing_files: true });
  const opened = records_(id).flatMap((r) => (r.event === 'opened' ? r.files : []));
  const backing = opened.filter((f) => f.startsWith(join(daemon.root, 'images')));
  assert.equal(backing.length, 2, `the block image, once a boot: ${opened.join(', ')}`);
  assert.deepEqual(violations(), []);
  assert.deepEqual(daemon.vmDirs(), []);
});

test('attack on Cloud Hypervisor: an overlay swapped for one over a host file is refused at start, naming both; nothing runs', async () => {
  const file = hac('ch-swap', fake('cloud-hypervisor-swap'), imageHardware());
  const spawn = daemon.cli(['spawn', '--hac', file]);
  assert.equal(spawn.code, 0, `${spawn.stderr}\n${daemon.log()}`);
  const id = lastLine(spawn.stdout);
  assert.equal(daemon.cli(['stop', id, '--time', '5']).code, 0);
  const overlay = join(daemon.root, 'vms', id, 'image.qcow2');
  const secret = join(daemon.dir, 'host-secret');
  writeFileSync(secret, 'not for guests\n');
  rmSync(overlay);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', secret, '-F', 'raw', overlay, '1M']);
  const before = records_(id).filter((r) => r.event === 'start').length;
  const start = daemon.cli(['start', id]);
  assert.notEqual(start.code, 0);
  assert.match(start.stderr, new RegExp(`the overlay ${overlay} names the backing file ${secret}, not the image's block image .* it was made over`));
  assert.equal(records_(id).filter((r) => r.event === 'start').length, before, 'no VMM was started');
  assert.notEqual(vm(id)?.state, 'running');
  assert.equal(daemon.cli(['rm', '-f', id]).code, 0);
  assert.deepEqual(daemon.strayProcesses(), []);
  assert.deepEqual(violations(), []);
});

test('a kernel-only VM on Cloud Hypervisor: the guest powering off leaves it stopped with a clean exit', async () => {
  const file = hac('ch-kernel', fake('cloud-hypervisor-short', { FAKE_CH_GUEST_LIFETIME_MS: '500' }), 'kernel = "vmlinux"');
  const spawn = daemon.cli(['spawn', '--hac', file]);
  assert.equal(spawn.code, 0, `${spawn.stderr}\n${daemon.log()}`);
  const id = lastLine(spawn.stdout);
  const stopped = await waitFor('the VM to stop', 15_000, () => {
    const v = vm(id);
    return v?.state === 'stopped' || v?.state === 'failed' ? v : undefined;
  });
  assert.equal(stopped.state, 'stopped', JSON.stringify(stopped));
  assert.equal(createdDisks(id)[0], undefined, 'no disk');
  assert.equal(daemon.cli(['rm', id]).code, 0);
  assert.deepEqual(violations(), []);
});

test('bad input on Cloud Hypervisor: a kernel it cannot boot, an old version, a missing binary, a VMM dying at vm.boot: clear errors, nothing left', async () => {
  const drive = 'kernel = "vmlinux"\ndrive = "drive.raw"';
  const cases: FailingSpawn[] = [
    ['ch-junk', hac('ch-junk', fake('cloud-hypervisor-junk'), 'kernel = "kernel.txt"\ndrive = "drive.raw"'), /kernel\.txt is neither a bzImage nor an ELF vmlinux, which is what Cloud Hypervisor boots/],
    ['ch-old', hac('ch-old', fake('cloud-hypervisor-old', { FAKE_CH_VERSION: 'v50.1' }), drive), /Cloud Hypervisor v50\.1; Hypercore needs v51\.0 or newer/],
    ['ch-missing', hac('ch-missing', join(daemon.dir, 'no-cloud-hypervisor'), drive), /no-cloud-hypervisor/],
    ['ch-dies', hac('ch-dies', fake('cloud-hypervisor-dies', { FAKE_CH_DIE: 'PUT vm.boot' }), drive), /Cloud Hypervisor failed to create VM ch-dies: .*dying on PUT vm\.boot/],
    ['ch-refused', hac('ch-refused', fake('cloud-hypervisor-refuses', { FAKE_CH_FAIL: 'PUT vm.create' }), drive), /Cloud Hypervisor refused PUT vm\.create \(HTTP 500\): injected failure/],
  ];
  assertSpawnsFailCleanly(daemon, cases);
  assert.deepEqual(violations(), []);
});

test('doctor lists Cloud Hypervisor between Firecracker and QEMU, with its version or why it is unusable here', () => {
  const r = daemon.cli(['doctor']);
  assert.match(r.stdout, /^firecracker\s+(yes|no)\s+[^\n]*\n(?:.*\n)*?cloud-hypervisor\s+(yes|no)\s+[^\n]+\n(?:.*\n)*?qemu\s+/m, r.stdout);
});
