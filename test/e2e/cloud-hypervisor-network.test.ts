/**
 * The Cloud Hypervisor provider with a NAT network, against the fake Cloud Hypervisor, in a network
 * namespace this test creates and deletes (the daemon runs in it, so its bridge, TAPs and nftables
 * rules live there): vm.create names the VM's own TAP and MAC; stop gives the TAP back and start
 * makes it again; a launch that fails at vm.create or vm.boot leaves no TAP, rule or lease.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFakeCloudHypervisor } from '../../src/providers/cloud-hypervisor/testing/fake-cloud-hypervisor.js';
import { lastLine, TestDaemon } from './harness.js';
import { assertSpawnsFailCleanly, FakeVmmCallLog, vmById } from './vmm-contract-kit.js';

const ns = `hc-e2e-chnet-${randomBytes(3).toString('hex')}`;
const inNs = (...args: string[]) => execFileSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
let daemon: TestDaemon;
let log: FakeVmmCallLog;

function taps(): string[] {
  return (JSON.parse(inNs('ip', '-j', 'link', 'show')) as { ifname: string }[]).map((l) => l.ifname).filter((n) => n.startsWith('hc') && !n.startsWith('hcbr'));
}

function hac(name: string, env: Record<string, string> = {}): string {
  const binary = writeFakeCloudHypervisor(daemon.dir, { FAKE_CH_RECORD_DIR: log.dir, ...env }, `cloud-hypervisor-${name}`);
  const file = join(daemon.dir, `${name}.toml`);
  writeFileSync(file, `[spacecore]\nname = "${name}"\n[hardware]\nmemory = 128\nkernel = "vmlinux"\ndrive = "drive.raw"\n[hypervisor]\nprovider = "cloud-hypervisor"\n[hypervisor.cloud_hypervisor]\nbinary = "${binary}"\n[network]\nmode = "nat"\nsubnet = "10.78.0.0/24"\n`);
  return file;
}

before(async () => {
  execFileSync('ip', ['netns', 'add', ns]);
  execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  daemon = new TestDaemon('hc-e2e-chnet-', ns);
  log = new FakeVmmCallLog(join(daemon.dir, 'records'));
  mkdirSync(log.dir, { recursive: true });
  writeFileSync(join(daemon.dir, 'vmlinux'), Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]), Buffer.alloc(4096)]));
  writeFileSync(join(daemon.dir, 'drive.raw'), Buffer.alloc(1024 * 1024));
  await daemon.start();
});

after(async () => {
  await daemon?.cleanup();
  spawnSync('ip', ['netns', 'del', ns]);
});

test("a NAT VM on Cloud Hypervisor: vm.create names its TAP and MAC; stop gives the TAP back, start makes it again, rm removes it", () => {
  const spawn = daemon.cli(['spawn', '--hac', hac('ch-nat')]);
  assert.equal(spawn.code, 0, `${spawn.stderr}\n${daemon.log()}`);
  const id = lastLine(spawn.stdout);
  const vm = vmById(daemon, id)!;
  assert.deepEqual(taps(), [vm.network!.tap]);
  const creates = () => log.calls(id).flatMap((c) => (c.path === '/api/v1/vm.create' ? [c.body as { net: unknown[]; payload: { cmdline: string } }] : []));
  assert.deepEqual(creates().map((c) => c.net), [[{ id: 'net0', tap: vm.network!.tap, mac: vm.network!.mac }]]);
  assert.match(creates()[0]!.payload.cmdline, / hc\.ip=10\.78\.0\.2\/24 hc\.gw=10\.78\.0\.1/);
  assert.equal(daemon.cli(['stop', id, '--time', '5']).code, 0);
  assert.deepEqual(taps(), [], 'stop gives the TAP back');
  assert.equal(daemon.cli(['start', id]).code, 0);
  assert.deepEqual(taps(), [vmById(daemon, id)!.network!.tap]);
  assert.equal(creates().length, 2);
  assert.equal(daemon.cli(['rm', '-f', id]).code, 0);
  assert.deepEqual(taps(), []);
  assert.doesNotMatch(inNs('nft', 'list', 'ruleset'), new RegExp(`hc:${id}`));
  assert.deepEqual(log.violations(), []);
});

test('a NAT VM whose Cloud Hypervisor refuses vm.create or dies at vm.boot: the error names it, and no TAP, rule or lease is left', () => {
  assertSpawnsFailCleanly(daemon, [
    ['ch-nat-refused', hac('ch-nat-refused', { FAKE_CH_FAIL: 'PUT vm.create' }), /Cloud Hypervisor refused PUT vm\.create \(HTTP 500\): injected failure/],
    ['ch-nat-dies', hac('ch-nat-dies', { FAKE_CH_DIE: 'PUT vm.boot' }), /dying on PUT vm\.boot/],
  ]);
  assert.deepEqual(taps(), []);
  assert.doesNotMatch(inNs('nft', 'list', 'ruleset'), /hc:[0-9a-f]{16}/);
  const doctor = daemon.cli(['doctor']);
  assert.doesNotMatch(doctor.stdout, /lease|TAP/i, doctor.stdout);
  assert.deepEqual(log.violations(), []);
});
