/**
 * The Cloud Hypervisor provider driven by a real hypercored against the fake Cloud Hypervisor (the
 * official OpenAPI document plus Cloud Hypervisor's state rules; no KVM needed). The daemon runs in
 * a network namespace this test creates and deletes, so its bridge, TAPs and nftables rules live
 * there. The CLI does spawn, create and doctor; the rest goes through the API in-process (a CLI
 * process per step costs over a second on a loaded host). Covered: a NAT VM with a drive and an
 * image (the daemon's qcow2 overlay over the image's block image) through spawn, pause, resume,
 * stop, start, a daemon crash and adoption, snapshot and clone refused, its VMM's metrics, an
 * overlay swapped for one over a host file, and rm; launches failing at vm.create and vm.boot;
 * doctor and provider = "auto". Every API call of every launch must pass the contract, and nothing
 * may be left behind: process, file, TAP, rule or lease. Kernel-only VMs, bad kernels, old versions
 * and missing binaries are the provider's own contract tests (no daemon needed).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HypercoreClient, SnapshotUnsupportedError } from '../../sdk/src/index.js';
import { buildImage, buildLayer, busyboxLayerEntries, writeOciLayoutTar } from '../../src/images/testing/oci-builder.js';
import { writeFakeCloudHypervisor, type FakeRecord } from '../../src/providers/cloud-hypervisor/testing/fake-cloud-hypervisor.js';
import { isAlive, lastLine, TestDaemon } from './harness.js';
import { assertSpawnsFailCleanly, FakeVmmCallLog } from './vmm-contract-kit.js';

const ns = `hc-e2e-chc-${randomBytes(3).toString('hex')}`;
const inNs = (...args: string[]) => execFileSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
const daemon = new TestDaemon('hc-e2e-chc-', ns);
const records = join(daemon.dir, 'records');
const imageRef = 'hc/busybox:1';
const subnet = 'subnet = "10.78.0.0/24"';

before(async () => {
  execFileSync('ip', ['netns', 'add', ns]);
  execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  mkdirSync(records, { recursive: true });
  // An ELF "kernel" and a raw drive: the fake VMM opens them as Cloud Hypervisor would, and boots nothing.
  writeFileSync(join(daemon.dir, 'vmlinux'), Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]), Buffer.alloc(4096)]));
  writeFileSync(join(daemon.dir, 'drive.raw'), Buffer.alloc(1024 * 1024));
  await daemon.start();
  const tar = join(daemon.dir, 'busybox.tar');
  await writeOciLayoutTar(buildImage([await buildLayer(busyboxLayerEntries('NAME="Hypercore cloud-hypervisor test"\nID=hcch\n'))], { cmd: ['/bin/sh'] }), tar, imageRef);
  const imported = daemon.cli(['image', 'import', tar]);
  assert.equal(imported.code, 0, imported.stderr);
});

after(async () => {
  await api?.close();
  await daemon.cleanup();
  spawnSync('ip', ['netns', 'del', ns]);
});

const log = new FakeVmmCallLog(records);
const records_ = (id: string) => log.records<FakeRecord>(id);
const calls = (id: string) => log.changes(id, '/api/v1/');
const violations = () => log.violations();
let api: HypercoreClient | undefined;
/** The API in-process (a fresh client after a daemon restart). */
const client = () => (api ??= new HypercoreClient({ socketPath: daemon.socket }));
const vm = async (id: string) => (await client().listVms()).find((v) => v.id === id);

function taps(): string[] {
  return (JSON.parse(inNs('ip', '-j', 'link', 'show')) as { ifname: string }[]).map((l) => l.ifname).filter((n) => n.startsWith('hc') && !n.startsWith('hcbr'));
}

/** `<name>.toml` for Cloud Hypervisor with `binary`, the `[hardware]` lines and the `[network]` lines. */
function hac(name: string, binary: string, hardware: string, network = 'mode = "none"'): string {
  const file = join(daemon.dir, `${name}.toml`);
  writeFileSync(file, `[spacecore]\nname = "${name}"\n[hardware]\ncores = 1\nmemory = 128\n${hardware}\n[hypervisor]\nprovider = "cloud-hypervisor"\n[hypervisor.cloud_hypervisor]\nbinary = "${binary}"\n[network]\n${network}\n`);
  return file;
}

function fake(name: string, env: Record<string, string> = {}): string {
  return writeFakeCloudHypervisor(daemon.dir, { FAKE_CH_RECORD_DIR: records, ...env }, name);
}

type CreateBody = { disks: Record<string, unknown>[]; net?: unknown[]; payload: { cmdline: string } };
function creates(id: string): CreateBody[] {
  return log.calls(id).flatMap((c) => (c.path === '/api/v1/vm.create' ? [c.body as CreateBody] : []));
}

const drive = 'kernel = "vmlinux"\ndrive = "drive.raw"';

test("a NAT VM with a drive and an image on Cloud Hypervisor: spawn, pause, resume, stop, start, daemon crash and adoption, snapshot and clone refused, VMM metrics, an overlay swapped for one over a host file refused, rm; every call within the contract, nothing left", async () => {
  const spawn = daemon.cli(['spawn', '--hac', hac('ch-drive', fake('cloud-hypervisor'), `${drive}\nref = "${imageRef}"`, `mode = "nat"\n${subnet}`)]);
  assert.equal(spawn.code, 0, `${spawn.stderr}\n${daemon.log()}`);
  const id = lastLine(spawn.stdout);
  const first = await client().getVm(id);
  assert.equal(first.state, 'running');
  assert.equal(first.provider, 'cloud-hypervisor');
  // vm.create names the VM's own TAP and MAC, and the guest's address is on its command line.
  assert.deepEqual(taps(), [first.network!.tap]);
  assert.deepEqual(creates(id)[0]!.net, [{ id: 'net0', tap: first.network!.tap, mac: first.network!.mac }]);
  assert.match(creates(id)[0]!.payload.cmdline, / hc\.ip=10\.78\.0\.2\/24 hc\.gw=10\.78\.0\.1/);

  assert.equal((await client().pauseVm(id)).state, 'paused');
  assert.equal((await client().resumeVm(id)).state, 'running');
  assert.equal((await client().stopVm(id, { timeoutSeconds: 10 })).state, 'stopped');
  assert.ok(!isAlive(first.pid!), 'stop ended the VMM');
  assert.deepEqual(taps(), [], 'stop gives the TAP back');
  const second = await client().startVm(id);
  assert.equal(second.state, 'running');
  assert.deepEqual(taps(), [second.network!.tap], 'start makes it again');
  const secondPid = second.pid!;

  // A crash of the daemon: the VMM survives and the restarted daemon adopts it, paused or not.
  assert.equal((await client().pauseVm(id)).state, 'paused');
  await daemon.kill9();
  assert.ok(isAlive(secondPid));
  await daemon.start();
  await api?.close();
  api = undefined;
  const found = (await vm(id))!;
  assert.equal(found.state, 'paused');
  assert.equal(found.pid, secondPid);
  assert.equal((await client().resumeVm(id)).state, 'running');

  // This provider declares no snapshot capability: a snapshot and a clone are refused naming it, and the VM runs on.
  const refused = (err: unknown) => err instanceof SnapshotUnsupportedError && /ch-drive runs on cloud-hypervisor, which cannot take snapshots/.test(err.message);
  await assert.rejects(client().createSnapshot(id, {}), refused);
  await assert.rejects(client().cloneVm(id, 1), refused);
  assert.equal((await vm(id))?.state, 'running');
  assert.deepEqual(await client().listSnapshots(), []);

  // Metrics read the VMM process of a Cloud Hypervisor VM as they do QEMU's: its CPU time and resident memory.
  const metrics = execFileSync('curl', ['-sS', '--unix-socket', daemon.socket, 'http://localhost/metrics'], { encoding: 'utf8' });
  const rss = Number(new RegExp(`^hypercore_vm_memory_rss_bytes\\{vm_id="${id}"\\} (\\d+)$`, 'm').exec(metrics)?.[1]);
  const actual = Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${secondPid}/status`, 'utf8'))?.[1]) * 1024;
  assert.ok(rss > 0 && Math.abs(rss - actual) < 16 * 1024 * 1024, `RSS ${rss} against the VMM's ${actual}\n${metrics}`);
  assert.match(metrics, new RegExp(`^hypercore_vm_cpu_seconds_total\\{vm_id="${id}"\\} [0-9.e+-]+$`, 'm'));
  assert.match(metrics, new RegExp(`^hypercore_vm_info\\{vm_id="${id}",name="ch-drive",provider="cloud-hypervisor"\\} 1$`, 'm'));
  assert.match(metrics, /^hypercore_vms\{state="running",provider="cloud-hypervisor"\} 1$/m);

  // Attack: the overlay swapped for one over a host file is refused at start, naming both; no VMM starts.
  // (A forced stop: the graceful one was above.)
  assert.equal((await client().stopVm(id, { force: true })).state, 'stopped');
  const overlay = join(daemon.root, 'vms', id, 'image.qcow2');
  const secret = join(daemon.dir, 'host-secret');
  writeFileSync(secret, 'not for guests\n');
  rmSync(overlay);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', secret, '-F', 'raw', overlay, '1M']);
  const boots = records_(id).filter((r) => r.event === 'start').length;
  await assert.rejects(client().startVm(id), new RegExp(`the overlay ${overlay} names the backing file ${secret}, not the image's block image .* it was made over`));
  assert.equal(records_(id).filter((r) => r.event === 'start').length, boots, 'no VMM was started');
  assert.notEqual((await vm(id))?.state, 'running');
  assert.deepEqual(taps(), []);

  await client().deleteVm(id, { force: true });
  assert.equal(await vm(id), undefined);
  assert.ok(!isAlive(secondPid));
  assert.deepEqual(taps(), []);
  assert.doesNotMatch(inNs('nft', 'list', 'ruleset'), new RegExp(`hc:${id}`));

  const launch = ['PUT vm.create', 'PUT vm.boot'];
  const stop = 'PUT vm.power-button';
  assert.deepEqual(calls(id), [...launch, 'PUT vm.pause', 'PUT vm.resume', stop, ...launch, 'PUT vm.pause', 'PUT vm.resume']);
  const [root, image] = creates(id)[0]!.disks;
  assert.deepEqual(root, { id: 'root', path: join(daemon.dir, 'drive.raw'), readonly: false, image_type: 'Raw' });
  assert.deepEqual({ ...image, path: undefined }, { id: 'image', path: undefined, readonly: false, serial: 'image', image_type: 'Qcow2', backing_files: true });
  const opened = records_(id).flatMap((r) => (r.event === 'opened' ? r.files : []));
  const backing = opened.filter((f) => f.startsWith(join(daemon.root, 'images')));
  assert.equal(backing.length, 2, `the block image, once a boot: ${opened.join(', ')}`);
  assert.deepEqual(daemon.strayProcesses(), []);
  assert.deepEqual(violations(), []);
  assert.deepEqual(daemon.vmDirs(), []);
});

test('a NAT VM whose Cloud Hypervisor refuses vm.create or dies at vm.boot: the error names it, and no process, file, TAP, rule or lease is left', async () => {
  const nat = `mode = "nat"\n${subnet}`;
  await assertSpawnsFailCleanly(daemon, client(), [
    ['ch-refused', hac('ch-refused', fake('cloud-hypervisor-refuses', { FAKE_CH_FAIL: 'PUT vm.create' }), drive, nat), /Cloud Hypervisor refused PUT vm\.create \(HTTP 500\): injected failure/],
    ['ch-dies', hac('ch-dies', fake('cloud-hypervisor-dies', { FAKE_CH_DIE: 'PUT vm.boot' }), drive, nat), /Cloud Hypervisor failed to create VM ch-dies: .*dying on PUT vm\.boot/],
  ]);
  assert.deepEqual(taps(), []);
  assert.doesNotMatch(inNs('nft', 'list', 'ruleset'), /hc:[0-9a-f]{16}/);
  assert.deepEqual(violations(), []);
});

test('doctor lists Cloud Hypervisor between Firecracker and QEMU, with its version or why it is unusable here, and no leftovers; provider = "auto" asks them in that order', async () => {
  const r = daemon.cli(['doctor']);
  assert.match(r.stdout, /^firecracker\s+(yes|no)\s+[^\n]*\n(?:.*\n)*?cloud-hypervisor\s+(yes|no)\s+[^\n]+\n(?:.*\n)*?qemu\s+/m, r.stdout);
  // Leftovers (leases, TAPs, rules of removed VMs) would be listed: the failed launches above left none.
  assert.doesNotMatch(r.stdout, /lease|TAP/i, r.stdout);
  // A created (not booted) VM: Firecracker's binary is missing; this Cloud Hypervisor (the fake)
  // answers, so it is picked when /dev/kvm opens, else QEMU is; either way the record says why.
  const file = join(daemon.dir, 'ch-auto.toml');
  writeFileSync(file, `[spacecore]\nname = "ch-auto"\n[hardware]\nmemory = 128\n${drive}\n[hypervisor]\nprovider = "auto"\n[hypervisor.firecracker]\nbinary = "${join(daemon.dir, 'no-firecracker')}"\n[hypervisor.cloud_hypervisor]\nbinary = "${fake('cloud-hypervisor-auto')}"\n[network]\nmode = "none"\n`);
  const created = daemon.cli(['create', '--hac', file]);
  assert.equal(created.code, 0, created.stderr);
  const picked = (await vm(lastLine(created.stdout)))!;
  assert.equal(picked.state, 'created');
  const reason = picked.providerReason ?? '';
  assert.match(reason, /^auto: firecracker unusable \(.*no-firecracker.*\); (cloud-hypervisor picked|cloud-hypervisor unusable \(.+\); qemu picked) \(.+\)$/);
  assert.equal(picked.provider, reason.includes('cloud-hypervisor picked') ? 'cloud-hypervisor' : 'qemu');
  await client().deleteVm(picked.id);
  assert.deepEqual(violations(), []);
});
