/**
 * Warm start end to end on real QEMU guests (TCG): an image VM is snapshotted; new VMs resume from
 * the snapshot with its files, and clones get their own clock, entropy, hostname, machine id, MAC
 * and address (they answer HTTP on their own IPs); the snapshot and the clones outlive the source
 * VM; bad input is refused and leaves nothing behind. The daemon runs in a network namespace made
 * here, so the clones' network is reached only inside it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Vm } from '../../src/core/vm.js';
import type { SnapshotView } from '../../src/api/operations.js';
import { buildImage, buildLayer, busyboxLayerEntries, writeOciLayoutTar } from '../../src/images/testing/oci-builder.js';
import { lastLine, sleep, TestDaemon, waitFor } from './harness.js';

const ns = `hc-e2e-snap-${randomBytes(3).toString('hex')}`;
const inNs = (...args: string[]) => execFileSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
let daemon: TestDaemon;
let sourceId: string;
let snapshotId: string;

// The workload serves its own hostname over HTTP, so a clone's answer names the clone.
// Written aside and renamed: a request between a truncation and the write would read an empty page.
const workload = `mkdir -p /www; (while :; do hostname > /www/.next && mv /www/.next /www/index.html; sleep 0.2; done) & exec httpd -f -p 80 -h /www`;

function cli(args: string[]) {
  return daemon.cli(args);
}

function ok(args: string[]): string {
  const r = cli(args);
  assert.equal(r.code, 0, `hypercore ${args.join(' ')}: ${r.stderr}\n${daemon.log().slice(-4000)}`);
  return r.stdout;
}

function vms(): Vm[] {
  return JSON.parse(ok(['ls', '--json'])) as Vm[];
}

function snapshots(): SnapshotView[] {
  return JSON.parse(ok(['snapshot', 'ls', '--json'])) as SnapshotView[];
}

function exec(vm: string, script: string): string {
  return ok(['exec', vm, '--', 'sh', '-c', script]);
}

function taps(): string[] {
  return (JSON.parse(inNs('ip', '-j', 'link', 'show')) as { ifname: string }[]).map((l) => l.ifname).filter((n) => n.startsWith('hc') && !n.startsWith('hcbr'));
}

before(async () => {
  execFileSync('ip', ['netns', 'add', ns]);
  execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  process.env['HYPERCORE_AGENT_TIMEOUT'] = '120';
  daemon = new TestDaemon('hc-e2e-snap-', ns);
  await daemon.start();
  const tar = join(daemon.dir, 'busybox.tar');
  await writeOciLayoutTar(buildImage([await buildLayer(busyboxLayerEntries())], { cmd: ['/bin/sh'] }), tar, 'hc/busybox:1');
  ok(['image', 'import', tar]);
  const hac = join(daemon.dir, 'web.toml');
  writeFileSync(hac, `[spacecore]\nname = "web"\n[hardware]\nmemory = 256\nref = "hc/busybox:1"\n[workload]\ncommand = ["sh", "-c", ${JSON.stringify(workload)}]\n[hypervisor]\nprovider = "qemu"\n[network]\nmode = "nat"\nsubnet = "10.78.0.0/24"\n`);
  sourceId = lastLine(ok(['spawn', '--hac', hac]));
});

after(async () => {
  await daemon?.cleanup();
  execFileSync('ip', ['netns', 'del', ns]);
});

test('a VM resumed from a snapshot has the files written before it, and its own identity', () => {
  exec(sourceId, 'echo written-before > /root/marker');
  snapshotId = lastLine(ok(['snapshot', 'create', sourceId, '--name', 'web-snap']));
  const [snap] = snapshots();
  assert.equal(snap?.name, 'web-snap');
  assert.match(snap!.vmmVersion, /^\d+\.\d+\.\d+/);
  // The source runs on after the snapshot.
  assert.equal(vms().find((v) => v.id === sourceId)?.state, 'running');
  assert.equal(exec(sourceId, 'echo still-here'), 'still-here\n');

  const restored = lastLine(ok(['spawn', '--from-snapshot', 'web-snap', '--name', 'web-restored']));
  const vm = vms().find((v) => v.id === restored)!;
  assert.equal(vm.state, 'running');
  assert.equal(vm.restoredFrom, snapshotId);
  assert.equal(exec(restored, 'cat /root/marker'), 'written-before\n');
  assert.equal(exec(restored, 'hostname'), 'web-restored\n');
  // Its own writable disk: a write there is not seen by the source.
  exec(restored, 'echo restored-only > /root/marker');
  assert.equal(exec(sourceId, 'cat /root/marker'), 'written-before\n');
});

test('clones: their own entropy, clock, hostname, machine id and address; each answers on its own IP', async () => {
  const ids = ok(['clone', sourceId, '--count', '2']).trim().split('\n');
  assert.equal(ids.length, 2);
  const clones = ids.map((id) => vms().find((v) => v.id === id)!);
  assert.deepEqual(clones.map((c) => c.state), ['running', 'running']);
  const random = ids.map((id) => exec(id, 'head -c 32 /dev/urandom | od -An -tx1'));
  assert.notEqual(random[0], random[1], 'two clones read different bytes from /dev/urandom');
  for (const id of ids) {
    const before = Date.now();
    // busybox date has no %N; a file's mtime, as stat prints it, has the clock to the nanosecond.
    const stamp = exec(id, 'touch /tmp/now && stat -c %y /tmp/now').trim();
    const guestMs = Date.parse(stamp.replace(' ', 'T').replace(/\.(\d{3})\d* \+0000$/, '.$1Z'));
    const afterMs = Date.now();
    assert.ok(guestMs > before - 1000 && guestMs < afterMs + 1000, `the clone's clock is within 1 s of the host's (guest ${guestMs}, host ${before}..${afterMs})`);
  }
  const machineIds = ids.map((id) => exec(id, 'cat /etc/machine-id').trim());
  assert.match(machineIds[0]!, /^[0-9a-f]{32}$/);
  assert.notEqual(machineIds[0], machineIds[1]);
  const source = vms().find((v) => v.id === sourceId)!;
  const addresses = new Set([source.network!.ip, ...clones.map((c) => c.network!.ip)]);
  assert.equal(addresses.size, 3, 'source and clones have different addresses');
  assert.equal(new Set([source.network!.mac, ...clones.map((c) => c.network!.mac)]).size, 3, 'and different MACs');
  for (const c of clones) {
    assert.equal(exec(c.id, 'hostname'), `${c.name}\n`);
    assert.equal(exec(c.id, 'cat /sys/class/net/eth0/address'), `${c.network!.mac}\n`);
    const body = await waitForBody(c.network!.ip);
    assert.equal(body, `${c.name}\n`, `clone ${c.name} answers on its own address ${c.network!.ip}`);
  }
  assert.equal(inNs('curl', '-sS', '--max-time', '20', `http://${source.network!.ip}/`), 'web\n');
  // The clone's snapshot is gone once the clones run.
  assert.deepEqual(snapshots().map((s) => s.name), ['web-snap']);
});

async function waitForBody(ip: string): Promise<string> {
  let last = '';
  for (let i = 0; i < 25; i++) {
    try {
      last = inNs('curl', '-sS', '--max-time', '5', `http://${ip}/`);
      // The source's name until the clone's identity reached its workload's loop.
      if (last.trim() !== 'web' && last.trim() !== '') return last;
    } catch (err) {
      last = String(err);
    }
    await sleep(200);
  }
  return last;
}

test('removing the source VM breaks neither its snapshot nor its clones', async () => {
  const clones = vms().filter((v) => v.name.startsWith('web-clone-'));
  ok(['rm', '-f', sourceId]);
  for (const c of clones) assert.equal(exec(c.id, 'cat /root/marker'), 'written-before\n');
  const again = lastLine(ok(['spawn', '--from-snapshot', snapshotId, '--name', 'web-again']));
  assert.equal(exec(again, 'cat /root/marker'), 'written-before\n');
  await waitFor('the resumed VM to serve HTTP', 20_000, () => (vms().find((v) => v.id === again)?.state === 'running' ? true : undefined));
});

test('bad input: clear errors, and nothing is left behind', () => {
  const before = { vms: vms().map((v) => v.id).sort(), taps: taps().sort(), snapshots: snapshots().map((s) => s.id), dirs: daemon.vmDirs().sort() };
  const some = vms()[0]!.id;
  for (const count of ['0', '1000']) {
    const r = cli(['clone', some, '--count', count]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`count = ${count}: must be a whole number from 1 to 32 \\[HC_INVALID_ARGUMENT\\]`));
  }
  const unknown = cli(['spawn', '--from-snapshot', 'no-such-snapshot']);
  assert.match(unknown.stderr, /no snapshot matches "no-such-snapshot".*\[HC_SNAPSHOT_NOT_FOUND\]/);
  const noVm = cli(['snapshot', 'create', 'no-such-vm']);
  assert.match(noVm.stderr, /\[HC_VM_NOT_FOUND\]/);

  // A snapshot saved by another QEMU version.
  const notes = join(daemon.root, 'snapshots', snapshotId, 'qemu.json');
  const saved = readFileSync(notes, 'utf8');
  writeFileSync(notes, saved.replace(/"version":"[^"]*"/, '"version":"6.2.0"'));
  const other = cli(['spawn', '--from-snapshot', snapshotId, '--name', 'web-other']);
  writeFileSync(notes, saved);
  assert.equal(other.code, 1);
  assert.match(other.stderr, /saved by QEMU .* but this host runs QEMU .*\[HC_SNAPSHOT_INCOMPATIBLE\]/);

  const afterAll = { vms: vms().map((v) => v.id).sort(), taps: taps().sort(), snapshots: snapshots().map((s) => s.id), dirs: daemon.vmDirs().sort() };
  assert.deepEqual(afterAll, before);
});

test('snapshot rm removes its files; a VM resumed from it runs on', () => {
  const resumed = vms().find((v) => v.name === 'web-again')!;
  ok(['snapshot', 'rm', 'web-snap']);
  assert.deepEqual(snapshots(), []);
  assert.throws(() => readFileSync(join(daemon.root, 'snapshots', snapshotId, 'qemu.json')));
  assert.equal(exec(resumed.id, 'echo alive'), 'alive\n');
});

test('create defines a VM without booting it (no VMM, no TAP); start boots it', () => {
  const hac = join(daemon.dir, 'later.toml');
  writeFileSync(hac, `[spacecore]\nname = "later"\n[hardware]\nmemory = 256\nref = "hc/busybox:1"\n[workload]\ncommand = ["sleep", "100000"]\n[hypervisor]\nprovider = "qemu"\n[network]\nmode = "nat"\nsubnet = "10.78.0.0/24"\n`);
  const tapsBefore = taps().sort();
  const id = lastLine(ok(['create', '--hac', hac]));
  const defined = vms().find((v) => v.id === id)!;
  assert.equal(defined.state, 'created');
  assert.equal(defined.pid, undefined);
  assert.deepEqual(taps().sort(), tapsBefore);
  ok(['start', id]);
  assert.equal(vms().find((v) => v.id === id)?.state, 'running');
  assert.equal(exec(id, 'echo booted'), 'booted\n');
});
