/**
 * The Firecracker provider driven by a real hypercored and CLI against the fake Firecracker (the
 * official API document plus Firecracker's ordering rules; no KVM needed): create, pause, resume,
 * stop, start, daemon crash and adoption, kernel-only VMs, rm, and bad input. Every API call of
 * every launch must pass the contract, and nothing may be left behind.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Vm } from '../../src/core/vm.js';
import { writeFakeFirecracker, type FakeRecord } from '../../src/providers/firecracker/testing/fake-firecracker.js';
import { isAlive, lastLine, TestDaemon, waitFor } from './harness.js';

const daemon = new TestDaemon('hc-e2e-fcc-');
const records = join(daemon.dir, 'records');

before(async () => {
  mkdirSync(records, { recursive: true });
  // An ELF "kernel" and a raw drive: the fake VMM opens them as Firecracker would, and boots nothing.
  writeFileSync(join(daemon.dir, 'vmlinux'), Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]), Buffer.alloc(4096)]));
  writeFileSync(join(daemon.dir, 'drive.raw'), Buffer.alloc(1024 * 1024));
  const bz = Buffer.alloc(0x400);
  bz.write('HdrS', 0x202, 'latin1');
  writeFileSync(join(daemon.dir, 'vmlinuz'), bz);
  await daemon.start();
});

after(async () => {
  await daemon.cleanup();
});

function hac(name: string, binary: string, hardware: string): string {
  const file = join(daemon.dir, `${name}.toml`);
  writeFileSync(file, `[spacecore]\nname = "${name}"\n[hardware]\ncores = 1\nmemory = 128\n${hardware}\n[hypervisor]\nprovider = "firecracker"\n[hypervisor.firecracker]\nbinary = "${binary}"\n[network]\nmode = "none"\n`);
  return file;
}

function fake(name: string, env: Record<string, string> = {}): string {
  return writeFakeFirecracker(daemon.dir, { FAKE_FC_RECORD_DIR: records, ...env }, name);
}

function vmById(id: string): Vm | undefined {
  const r = daemon.cli(['ls', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as Vm[]).find((v) => v.id === id);
}

function readRecords(id: string): FakeRecord[] {
  try {
    return readFileSync(join(records, `${id}.jsonl`), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as FakeRecord);
  } catch {
    return [];
  }
}

function calls(id: string): string[] {
  return readRecords(id).flatMap((r) => (r.event === 'call' && r.method !== 'GET' ? [`${r.method} ${r.path}`] : []));
}

function violations(): string[] {
  return readdirSync(records).flatMap((f) => readRecords(f.replace(/\.jsonl$/, '')).flatMap((r) => (r.event === 'call' && r.violation ? [`${f}: ${r.method} ${r.path}: ${r.violation}`] : [])));
}

test('a drive VM on Firecracker: spawn, pause, resume, stop, start, daemon crash and adoption, rm; every call within the contract', async () => {
  const file = hac('fc-drive', fake('firecracker'), 'kernel = "vmlinux"\ndrive = "drive.raw"');
  const spawn = daemon.cli(['spawn', '--hac', file]);
  assert.equal(spawn.code, 0, `${spawn.stderr}\n${daemon.log()}`);
  const id = lastLine(spawn.stdout);
  let vm = vmById(id)!;
  assert.equal(vm.state, 'running');
  assert.equal(vm.provider, 'firecracker');
  const firstPid = vm.pid!;

  assert.equal(daemon.cli(['pause', id]).code, 0);
  assert.equal(vmById(id)?.state, 'paused');
  assert.equal(daemon.cli(['resume', id]).code, 0);
  assert.equal(vmById(id)?.state, 'running');

  const stop = daemon.cli(['stop', id, '--time', '10']);
  assert.equal(stop.code, 0, stop.stderr);
  vm = vmById(id)!;
  assert.equal(vm.state, 'stopped');
  assert.ok(!isAlive(firstPid), 'Firecracker ended');

  assert.equal(daemon.cli(['start', id]).code, 0);
  vm = vmById(id)!;
  assert.equal(vm.state, 'running');
  const secondPid = vm.pid!;

  // A crash of the daemon: the VMM survives and the restarted daemon adopts it.
  await daemon.kill9();
  assert.ok(isAlive(secondPid));
  await daemon.start();
  vm = vmById(id)!;
  assert.equal(vm.state, 'running');
  assert.equal(vm.pid, secondPid);

  const rm = daemon.cli(['rm', '-f', id]);
  assert.equal(rm.code, 0, rm.stderr);
  assert.equal(vmById(id), undefined);
  assert.ok(!isAlive(secondPid));

  const seen = calls(id);
  const launch = ['PUT /machine-config', 'PUT /boot-source', 'PUT /drives/root', 'PUT /entropy', 'PUT /actions'];
  assert.deepEqual(seen.slice(0, 5), launch);
  assert.deepEqual(seen.slice(5, 8), ['PATCH /vm', 'PATCH /vm', 'PUT /actions'], 'pause, resume, Ctrl-Alt-Del');
  assert.deepEqual(seen.slice(8, 13), launch, 'start launches afresh');
  assert.deepEqual(violations(), []);
  assert.deepEqual(daemon.vmDirs(), []);
});

test('a kernel-only VM on Firecracker: the guest powering off leaves it stopped with a clean exit', async () => {
  const file = hac('fc-kernel', fake('firecracker-short', { FAKE_FC_GUEST_LIFETIME_MS: '500' }), 'kernel = "vmlinux"');
  const spawn = daemon.cli(['spawn', '--hac', file]);
  assert.equal(spawn.code, 0, `${spawn.stderr}\n${daemon.log()}`);
  const id = lastLine(spawn.stdout);
  const vm = await waitFor('the VM to stop', 15_000, () => {
    const v = vmById(id);
    return v?.state === 'stopped' || v?.state === 'failed' ? v : undefined;
  });
  assert.equal(vm.state, 'stopped', JSON.stringify(vm));
  assert.ok(!calls(id).some((c) => c.startsWith('PUT /drives') || c === 'PUT /vsock'));
  assert.equal(daemon.cli(['rm', id]).code, 0);
  assert.deepEqual(violations(), []);
});

test('bad input on Firecracker: a bzImage kernel, an old Firecracker, a missing binary, a VMM dying while configured: clear errors, nothing left', async () => {
  const cases: [string, string, string, RegExp][] = [
    ['fc-bz', fake('firecracker-bz'), 'kernel = "vmlinuz"\ndrive = "drive.raw"', /vmlinuz is a compressed bzImage; Firecracker boots only an uncompressed ELF vmlinux/],
    ['fc-old', fake('firecracker-old', { FAKE_FC_VERSION: '1.7.1' }), 'kernel = "vmlinux"\ndrive = "drive.raw"', /Firecracker 1\.7\.1; Hypercore needs 1\.8 or newer/],
    ['fc-missing', join(daemon.dir, 'no-firecracker'), 'kernel = "vmlinux"\ndrive = "drive.raw"', /no-firecracker/],
    ['fc-dies', fake('firecracker-dies', { FAKE_FC_DIE: 'PUT /drives/root' }), 'kernel = "vmlinux"\ndrive = "drive.raw"', /Firecracker failed to configure VM fc-dies: .*dying on PUT \/drives\/root/],
  ];
  for (const [name, binary, hardware, message] of cases) {
    const r = daemon.cli(['spawn', '--hac', hac(name, binary, hardware)]);
    assert.notEqual(r.code, 0, `${name} must fail`);
    assert.match(r.stderr, message, name);
    const left = (JSON.parse(daemon.cli(['ls', '--json']).stdout) as Vm[]).filter((v) => v.name === name);
    for (const v of left) {
      assert.equal(v.state, 'failed', `${name}: a VM record that remains is failed, not running`);
      assert.equal(daemon.cli(['rm', v.id]).code, 0);
    }
  }
  assert.deepEqual(daemon.strayProcesses(), [], 'no fake Firecracker left running');
  assert.deepEqual(daemon.vmDirs(), []);
  assert.deepEqual(violations(), []);
});

test('doctor lists Firecracker with the reason it is unusable here, or its version', () => {
  const r = daemon.cli(['doctor']);
  assert.match(r.stdout, /^firecracker\s+(yes|no)\s+/m, r.stdout);
  assert.match(r.stdout, /^qemu\s+/m);
});
