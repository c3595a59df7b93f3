/**
 * The control plane with many defined VMs, through a real hypercored and the real CLI: `ls` of 100
 * VMs through the CLI, `GET /v1/vms` of 1000, `version` and `inspect` showing what they promise.
 * VMs are stopped drive VMs written into the daemon's state database (seed-vms.ts); no guest boots.
 * A VM created without boot is in the database at once (it survives kill -9) and owns no directory.
 * Times are printed as diagnostics, not asserted (a shared host decides them; the targets are
 * measured by bench/control-plane.ts against baselines of the same run).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { HypercoreClient, VmNotFoundError } from '../../sdk/src/index.js';
import { HYPERCORE_VERSION } from '../../src/core/version.js';
import { repoRoot, TestDaemon } from './harness.js';
import { seedStoppedVms } from './seed-vms.js';

const daemon = new TestDaemon('hc-e2e-cp-');
let client: HypercoreClient;
let drive: string;

before(async () => {
  drive = join(daemon.dir, 'drive.raw');
  writeFileSync(drive, '');
  truncateSync(drive, 16 * 1024 * 1024);
  seedStoppedVms(daemon.root, 100, { drive });
  await daemon.start();
  client = new HypercoreClient({ socketPath: daemon.socket });
});

after(async () => {
  await client?.close();
  await daemon.cleanup();
});

/** Runs node with `args` and times it, each call. */
function spawnTimes(args: readonly string[]): () => number {
  return () => {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, args);
    assert.equal(r.status, 0);
    return performance.now() - t0;
  };
}

function fastestCli(args: readonly string[], runs: number): { ms: number; stdout: string } {
  let ms = Infinity;
  let stdout = '';
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'hypercore'), ...args], { env: daemon.env, encoding: 'utf8' });
    const took = performance.now() - t0;
    assert.equal(r.status, 0, r.stderr);
    if (took < ms) ms = took;
    stdout = r.stdout;
  }
  return { ms, stdout };
}

test('hypercore ls of 100 VMs lists them all, in order, with their columns', (t) => {
  const node = spawnTimes(['-e', '0']);
  let ls = Infinity;
  let nodeFastest = Infinity;
  let stdout = '';
  for (let i = 0; i < 4; i++) {
    nodeFastest = Math.min(nodeFastest, node());
    const r = fastestCli(['ls'], 1);
    ls = Math.min(ls, r.ms);
    stdout = r.stdout;
  }
  const lines = stdout.trimEnd().split('\n');
  assert.equal(lines.length, 101);
  assert.match(lines[0]!, /^ID\s+NAME\s+STATE\s+PROVIDER/);
  assert.match(lines[1]!, /^5eed00000000\s+seeded-0\s+stopped\s+qemu/);
  t.diagnostic(`hypercore ls of 100 VMs: fastest of 4 ${ls.toFixed(1)} ms; node -e 0 ${nodeFastest.toFixed(1)} ms`);
});

test('a VM created without boot survives kill -9 of the daemon, owns no directory, and rm removes it', async () => {
  const spec = { name: 'defined', description: '', cores: 1, memoryMib: 128, kernelArgs: '', drive, driveReadOnly: true, provider: 'qemu' as const, hypervisor: { qemu: { accel: 'tcg' as const }, firecracker: {}, cloudHypervisor: {} } };
  const vm = await client.createVm(spec, { start: false });
  assert.equal(vm.state, 'created');
  assert.deepEqual(daemon.vmDirs(), []);
  await client.close();
  await daemon.kill9();
  await daemon.start();
  client = new HypercoreClient({ socketPath: daemon.socket });
  const again = await client.getVm('defined');
  assert.equal(again.id, vm.id);
  assert.equal(again.state, 'created');
  assert.deepEqual(again.spec, vm.spec);
  assert.ok((await client.listVms()).some((v) => v.id === vm.id));
  assert.equal(statSync(join(daemon.root, 'state.db')).mode & 0o777, 0o600);
  await client.deleteVm(vm.id, { force: false });
  await assert.rejects(client.getVm(vm.id), VmNotFoundError);
  assert.ok(!(await client.listVms()).some((v) => v.id === vm.id));
  assert.deepEqual(daemon.vmDirs(), []);
});

test('GET /v1/vms of 1000 VMs returns all of them', async (t) => {
  seedStoppedVms(daemon.root, 900, { drive, first: 100 });
  let ms = Infinity;
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const vms = await client.listVms();
    ms = Math.min(ms, performance.now() - t0);
    assert.equal(vms.length, 1000);
    assert.equal(new Set(vms.map((v) => v.id)).size, 1000);
  }
  t.diagnostic(`GET /v1/vms of 1000 VMs: fastest of 5 ${ms.toFixed(1)} ms`);
});

test('hypercore version shows the client, the daemon, QEMU and the guest kernel', () => {
  const { stdout } = fastestCli(['version'], 1);
  assert.match(stdout, new RegExp(`^Client: +hypercore ${HYPERCORE_VERSION.replace(/\./g, '\\.')} \\(node v\\d+`));
  assert.match(stdout, new RegExp(`\\nDaemon: +hypercored ${HYPERCORE_VERSION.replace(/\./g, '\\.')} \\(node v\\d+`));
  assert.match(stdout, /\nVMM qemu +\d+\.\d+\.\d+/);
  assert.match(stdout, /\nGuest kernel: +\d+\.\d+\.\d+-\S+ \(linux-image-/);
  const json = JSON.parse(fastestCli(['version', '--json'], 1).stdout) as { client: { version: string }; daemon: { version: string; providers: { name: string; usable: boolean }[] } };
  assert.equal(json.client.version, HYPERCORE_VERSION);
  assert.equal(json.daemon.version, HYPERCORE_VERSION);
  assert.ok(json.daemon.providers.some((p) => p.name === 'qemu'));
});

test('inspect shows the last start step by step; --json carries it as lastStart', () => {
  const text = fastestCli(['inspect', 'seeded-0'], 1).stdout;
  assert.match(text, /\nLast start: 231 ms at 2026-01-01T00:00:00\.000Z: record 0\.4, directories 0\.3, network 0\.1, image-disk 0\.1, launch 230, announce 0\.5$/m);
  const vm = JSON.parse(fastestCli(['inspect', '--json', 'seeded-0'], 1).stdout) as { lastStart?: { steps: { step: string }[] } };
  assert.deepEqual(vm.lastStart?.steps.map((s) => s.step), ['record', 'directories', 'network', 'image-disk', 'launch', 'announce']);
});
