/**
 * Networking with real devices, all inside a network namespace this test creates and deletes: the
 * daemon runs in it, so its bridge, TAPs and nftables rules live there and no packet leaves it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Vm } from '../../src/core/vm.js';
import { buildDemoRootfs, DEMO_MARKER } from '../../src/guest/demo-rootfs.js';
import { lastLine, TestDaemon, waitFor } from './harness.js';

const ns = `hc-e2e-net-${randomBytes(3).toString('hex')}`;
const inNs = (...args: string[]) => execFileSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
let daemon: TestDaemon;
let drive: string;
const listeners: ChildProcess[] = [];

function hac(name: string, network: string): string {
  const file = join(daemon.dir, `${name}.toml`);
  writeFileSync(file, `[spacecore]\nname = "${name}"\n[hardware]\nmemory = 128\ndrive = "rootfs.ext4"\ndrive_readonly = true\n[hypervisor]\nprovider = "qemu"\n[hypervisor.qemu]\naccel = "tcg"\n[network]\nmode = "nat"\nsubnet = "10.77.0.0/24"\n${network}`);
  return file;
}

function vms(): Vm[] {
  return JSON.parse(daemon.cli(['ls', '--json']).stdout) as Vm[];
}

function taps(): string[] {
  return (JSON.parse(inNs('ip', '-j', 'link', 'show')) as { ifname: string }[]).map((l) => l.ifname).filter((n) => n.startsWith('hc') && !n.startsWith('hcbr'));
}

before(async () => {
  execFileSync('ip', ['netns', 'add', ns]);
  execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  daemon = new TestDaemon('hc-e2e-net-', ns);
  drive = join(daemon.dir, 'rootfs.ext4');
  await buildDemoRootfs({
    output: drive,
    files: {
      '/www/index.html': 'hello from the guest\n',
      '/etc/rc.local': '#!/bin/sh\nhttpd -p 80 -h /www && echo "hypercore-demo: httpd up"\n',
    },
  });
  await daemon.start();
});

after(async () => {
  for (const l of listeners) l.kill('SIGKILL');
  await daemon?.cleanup();
  spawnSync('ip', ['netns', 'del', ns]);
});

test('a NAT VM gets an address, answers ping, and serves HTTP through a forwarded port', async () => {
  const r = daemon.cli(['spawn', '--hac', hac('web', 'ports = ["18080:80"]\n')]);
  assert.equal(r.code, 0, `${r.stderr}\n${daemon.log()}`);
  const id = lastLine(r.stdout);
  const vm = vms().find((v) => v.id === id)!;
  assert.equal(vm.network?.ip, '10.77.0.2');
  assert.equal(vm.network?.gateway, '10.77.0.1');
  assert.match(vm.network?.mac ?? '', /^02:/);
  assert.deepEqual(taps(), [vm.network!.tap]);
  await waitFor('httpd in the guest', 90_000, () => (daemon.cli(['logs', id]).stdout.includes('httpd up') ? true : undefined));
  assert.ok(daemon.cli(['logs', id]).stdout.includes(DEMO_MARKER));
  assert.match(inNs('busybox', 'ping', '-c', '2', '-W', '5', '10.77.0.2'), /2 packets received/);
  assert.equal(inNs('curl', '-sS', '--max-time', '20', 'http://10.77.0.2/'), 'hello from the guest\n', 'direct');
  assert.equal(inNs('curl', '-sS', '--max-time', '20', 'http://10.77.0.1:18080/'), 'hello from the guest\n', 'through the forwarded port on the bridge address');
  assert.equal(inNs('curl', '-sS', '--max-time', '20', 'http://127.0.0.1:18080/'), 'hello from the guest\n', "through the forwarded port on the namespace's loopback");
  assert.equal(daemon.cli(['rm', '-f', id]).code, 0);
  assert.deepEqual(taps(), [], 'rm removes the TAP');
  assert.doesNotMatch(inNs('nft', 'list', 'ruleset'), new RegExp(`hc:${id}`), 'and its rules');
});

test('5 concurrent spawns get 5 distinct addresses; rm frees them and a second round reuses them', async () => {
  const round = async () => {
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => daemon.cliAsync(['spawn', '--hac', hac(`c${i}`, '')])));
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    const ips = vms().map((v) => v.network!.ip).sort();
    for (const r of results) assert.equal(daemon.cli(['rm', '-f', lastLine(r.stdout)]).code, 0);
    return ips;
  };
  const first = await round();
  assert.equal(new Set(first).size, 5);
  assert.deepEqual(await round(), first);
  assert.deepEqual(taps(), []);
});

test('bad network input is refused with a clear error and creates nothing', async () => {
  inNs('ip', 'route', 'add', '10.99.0.0/24', 'dev', 'lo');
  const file = join(daemon.dir, 'overlap.toml');
  writeFileSync(file, `[spacecore]\nname = "ovl"\n[hardware]\nmemory = 128\ndrive = "rootfs.ext4"\n[hypervisor.qemu]\naccel = "tcg"\n[network]\nmode = "nat"\nsubnet = "10.99.0.0/16"\n`);
  const o = daemon.cli(['spawn', '--hac', file]);
  assert.equal(o.code, 1);
  assert.match(o.stderr, /overlapping subnet: 10\.99\.0\.0\/16 overlaps the existing route 10\.99\.0\.0\/24/);

  const badPort = daemon.cli(['spawn', '--hac', hac('badport', 'ports = ["80:http"]\n')]);
  assert.equal(badPort.code, 1);
  assert.match(badPort.stderr, /network\.ports\[0\] = "80:http"/);

  const listener = spawn('ip', ['netns', 'exec', ns, 'busybox', 'nc', '-l', '-p', '18081']);
  listeners.push(listener);
  await waitFor('the listener', 10_000, () => (inNs('ss', '-Hlnt').includes(':18081') ? true : undefined));
  const busy = daemon.cli(['spawn', '--hac', hac('busy', 'ports = ["18081:80"]\n')]);
  assert.equal(busy.code, 1);
  assert.match(busy.stderr, /18081\/tcp: that port is already in use/);

  const outside = daemon.cli(['spawn', '--hac', hac('outside', 'ip = "10.1.2.3"\n')]);
  assert.equal(outside.code, 1);
  assert.match(outside.stderr, /10\.1\.2\.3/);

  const first = daemon.cli(['spawn', '--hac', hac('static1', 'ip = "10.77.0.50"\n')]);
  assert.equal(first.code, 0, first.stderr);
  const dup = daemon.cli(['spawn', '--hac', hac('static2', 'ip = "10.77.0.50"\n')]);
  assert.equal(dup.code, 1);
  assert.match(dup.stderr, /10\.77\.0\.50/);
  assert.deepEqual(vms().map((v) => v.name), ['static1']);
  assert.equal(taps().length, 1, 'only the one VM that was created has a TAP');
  assert.equal(daemon.cli(['rm', '-f', 'static1']).code, 0);
  assert.deepEqual(taps(), []);
});

test('hypercored killed mid-create: after the restart no TAP, rule, lease or bridge is left, and doctor is clean', async () => {
  // A stand-in for QEMU that never finishes starting: the kill lands after the TAP was made.
  const fake = join(daemon.dir, 'hang-qemu.mjs');
  writeFileSync(fake, `#!${process.execPath}\nif (process.argv.includes('--version')) { console.log('QEMU emulator version 7.2 (fake)'); process.exit(0); }\nimport('node:fs').then(({ writeFileSync }) => { const i = process.argv.indexOf('-pidfile'); if (i > 0) writeFileSync(process.argv[i + 1], String(process.pid)); });\nsetInterval(() => {}, 1000);\n`, { mode: 0o755 });
  const file = join(daemon.dir, 'midcreate.toml');
  writeFileSync(file, `[spacecore]\nname = "midcreate"\n[hardware]\nmemory = 128\ndrive = "rootfs.ext4"\n[hypervisor.qemu]\nbinary = "${fake}"\naccel = "tcg"\n[network]\nmode = "nat"\nsubnet = "10.77.0.0/24"\nports = ["18090:80"]\n`);
  const pending = daemon.cliAsync(['spawn', '--hac', file]);
  await waitFor('the TAP of the VM being created', 20_000, () => (taps().length > 0 ? true : undefined));
  await daemon.kill9();
  await pending;
  await daemon.start();
  assert.deepEqual(vms(), []);
  assert.deepEqual(taps(), []);
  const links = (JSON.parse(inNs('ip', '-j', 'link', 'show')) as { ifname: string }[]).map((l) => l.ifname);
  assert.ok(!links.some((n) => n.startsWith('hcbr')), `no bridge is left: ${links.join(', ')}`);
  assert.doesNotMatch(inNs('nft', 'list', 'ruleset'), /hypercore/, 'the NAT table is gone with the last VM');
  const doctor = daemon.cli(['doctor']);
  assert.equal(doctor.code, 0, doctor.stdout);
  assert.match(doctor.stdout, /no problems found/);
});

test('mode "bridge": a TAP on an existing host bridge with a static address; rm leaves the bridge alone', async () => {
  inNs('ip', 'link', 'add', 'br-host', 'type', 'bridge');
  inNs('ip', 'addr', 'add', '10.66.0.1/24', 'dev', 'br-host');
  inNs('ip', 'link', 'set', 'br-host', 'up');
  const file = join(daemon.dir, 'bridged.toml');
  writeFileSync(file, `[spacecore]\nname = "bridged"\n[hardware]\nmemory = 128\ndrive = "rootfs.ext4"\ndrive_readonly = true\n[hypervisor.qemu]\naccel = "tcg"\n[network]\nmode = "bridge"\nbridge = "br-host"\nsubnet = "10.66.0.0/24"\nip = "10.66.0.5"\ngateway = "10.66.0.1"\n`);
  const r = daemon.cli(['spawn', '--hac', file]);
  assert.equal(r.code, 0, `${r.stderr}\n${daemon.log()}`);
  const id = lastLine(r.stdout);
  const master = (JSON.parse(inNs('ip', '-j', 'link', 'show', 'master', 'br-host')) as { ifname: string }[]).map((l) => l.ifname);
  assert.deepEqual(master, [vms()[0]!.network!.tap]);
  await waitFor('the guest network', 90_000, () => (daemon.cli(['logs', id]).stdout.includes('eth0 10.66.0.5/24') ? true : undefined));
  assert.match(inNs('busybox', 'ping', '-c', '2', '-W', '5', '10.66.0.5'), /2 packets received/);
  assert.equal(daemon.cli(['rm', '-f', id]).code, 0);
  assert.deepEqual(taps(), []);
  assert.match(inNs('ip', 'link', 'show', 'br-host'), /br-host/, 'the host bridge stays');
  const noBridge = join(daemon.dir, 'nobridge.toml');
  writeFileSync(noBridge, `[spacecore]\nname = "nob"\n[hardware]\nmemory = 128\ndrive = "rootfs.ext4"\n[network]\nmode = "bridge"\nbridge = "no-such-br"\nsubnet = "10.66.0.0/24"\nip = "10.66.0.6"\n`);
  const missing = daemon.cli(['spawn', '--hac', noBridge]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /network\.bridge = "no-such-br": no such bridge/);
  assert.deepEqual(vms(), []);
});
