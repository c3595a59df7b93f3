/**
 * Networking with real devices, all inside a network namespace this test creates and deletes: the
 * daemon runs in it, so its bridge, TAPs and nftables rules live there and no packet leaves it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Vm } from '../../src/core/vm.js';
import { buildDemoRootfs, DEMO_MARKER } from '../../src/guest/demo-rootfs.js';
import { spawnNodeInNetns, type NetnsProcess } from '../../src/network/test-netns.js';
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
  for (const p of hostServices) await p.stop().catch(() => undefined);
  await daemon?.cleanup();
  spawnSync('ip', ['netns', 'del', ns]);
  spawnSync('ip', ['netns', 'del', outsideNs]);
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
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => daemon.cliAsync(['spawn', '--hac', hac(`vm-c${i}`, '')])));
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

test('hypercored killed mid-create: the restarted daemon resumes the create with the same TAP and lease; rm then leaves no TAP, rule, lease or bridge, and doctor is clean', async () => {
  // A stand-in for QEMU that writes its pidfile and never finishes starting: the kill lands after
  // the TAP was made and the launch began.
  const fake = join(daemon.dir, 'hang-qemu.mjs');
  writeFileSync(fake, `#!${process.execPath}\nif (process.argv.includes('--version')) { console.log('QEMU emulator version 7.2 (fake)'); process.exit(0); }\nimport('node:fs').then(({ writeFileSync }) => { const i = process.argv.indexOf('-pidfile'); if (i > 0) writeFileSync(process.argv[i + 1], String(process.pid)); });\nsetInterval(() => {}, 1000);\n`, { mode: 0o755 });
  const file = join(daemon.dir, 'midcreate.toml');
  writeFileSync(file, `[spacecore]\nname = "midcreate"\n[hardware]\nmemory = 128\ndrive = "rootfs.ext4"\n[hypervisor.qemu]\nbinary = "${fake}"\naccel = "tcg"\n[network]\nmode = "nat"\nsubnet = "10.77.0.0/24"\nports = ["18090:80"]\n`);
  const pending = daemon.cliAsync(['spawn', '--hac', file]);
  const pidFiles = () => daemon.vmDirs().filter((d) => d.startsWith(daemon.runDir)).map((d) => join(d, 'qemu.pid')).filter((f) => existsSync(f));
  await waitFor('the VMM of the VM being created', 20_000, () => (pidFiles().length > 0 && taps().length > 0 ? true : undefined));
  const tapsBefore = taps();
  await daemon.kill9();
  await pending;
  await daemon.start();
  const resumed = await waitFor('the resumed create', 20_000, () => vms().find((v) => v.name === 'midcreate' && v.state === 'running'));
  assert.equal(resumed.network?.ip, '10.77.0.2', 'the same lease');
  assert.deepEqual(taps(), tapsBefore, 'the same TAP, no second one');
  assert.equal(daemon.cli(['rm', '-f', 'midcreate']).code, 0);
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

/**
 * A hostile guest: root in its own kernel, it answers each connection on port 7000 by probing,
 * one line per probe, what it can reach: a machine outside the host (through NAT), a host service
 * on every address and one the spec may allow (both on the gateway), and, after the four steps of
 * the loopback attack (own loopback gone, 127.0.0.0/8 routed to the gateway, route_localnet on
 * eth0), a host service bound to 127.0.0.1.
 */
const PROBE = `#!/bin/sh
gw=$(ip route | sed -n 's/^default via \\([0-9.]*\\).*/\\1/p')
probe() { echo "$1=[$(nc -w 4 "$2" "$3" </dev/null 2>/dev/null | head -c 200 | tr -d '\\n')]"; }
probe outside 10.55.0.2 9000
probe hostsvc "$gw" 9998
probe allowed "$gw" 3128
ip addr del 127.0.0.1/8 dev lo
ip route flush table local dev lo 2>/dev/null
ip route add 127.0.0.0/8 via "$gw" dev eth0
echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet
probe loopback 127.0.0.1 9999
ip route del 127.0.0.0/8 via "$gw" dev eth0
ip addr add 127.0.0.1/8 dev lo
echo "probe done"
`;

const outsideNs = `${ns}-out`;
const hostServices: NetnsProcess[] = [];
let hostile: string;

/** What the hostile guest behind host port `port` (on 127.0.0.1) reports, as name → answer. */
function probeThrough(port: number): Record<string, string> {
  const client = `const s=require('net').connect(${port},'127.0.0.1');let o='';s.setTimeout(60000,()=>{console.log(o);process.exit(2)});` +
    `s.on('data',d=>o+=d);s.on('end',()=>{console.log(o);process.exit(0)});s.on('error',e=>{console.error(e.message);process.exit(1)});`;
  const out = inNs(process.execPath, '-e', client);
  assert.match(out, /probe done/, out);
  return Object.fromEntries([...out.matchAll(/^(\w+)=\[(.*)\]$/gm)].map((m) => [m[1]!, m[2]!]));
}

function hostileHac(name: string, subnet: string, network: string): string {
  const file = join(daemon.dir, `${name}.toml`);
  writeFileSync(file, `[spacecore]\nname = "${name}"\n[hardware]\nmemory = 128\ndrive = "hostile.ext4"\ndrive_readonly = true\n[hypervisor.qemu]\naccel = "tcg"\n[network]\nmode = "nat"\nsubnet = "${subnet}"\n${network}`);
  return file;
}

async function spawnHostile(name: string, subnet: string, network: string): Promise<string> {
  const r = daemon.cli(['spawn', '--hac', hostileHac(name, subnet, network)]);
  assert.equal(r.code, 0, `${r.stderr}\n${daemon.log()}`);
  const id = lastLine(r.stdout);
  await waitFor(`the probe listener of ${name}`, 90_000, () => (daemon.cli(['logs', id]).stdout.includes('probe listening') ? true : undefined));
  return id;
}

test('hostile guests on two subnets: no host loopback, no host service, but NAT and port forwards for both', async () => {
  hostile = join(daemon.dir, 'hostile.ext4');
  await buildDemoRootfs({ output: hostile, files: { '/bin/probe': PROBE, '/etc/rc.local': '#!/bin/sh\nnc -ll -p 7000 -e /bin/probe &\necho "probe listening"\n' } });
  // "Another machine": a namespace behind a veth uplink of the daemon's namespace.
  execFileSync('ip', ['netns', 'add', outsideNs]);
  inNs('ip', 'link', 'add', 'upl0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outsideNs);
  inNs('ip', 'addr', 'add', '10.55.0.1/24', 'dev', 'upl0');
  inNs('ip', 'link', 'set', 'upl0', 'up');
  execFileSync('ip', ['-n', outsideNs, 'addr', 'add', '10.55.0.2/24', 'dev', 'eth0']);
  execFileSync('ip', ['-n', outsideNs, 'link', 'set', 'eth0', 'up']);
  const server = (name: string, port: number, address: string): string => `require('net').createServer(s=>s.end('${name} '+s.remoteAddress)).listen(${port},'${address}',()=>console.log('ready'))`;
  hostServices.push(await spawnNodeInNetns(outsideNs, server('outside', 9000, '10.55.0.2')));
  hostServices.push(await spawnNodeInNetns(ns, server('loopback-secret', 9999, '127.0.0.1')));
  hostServices.push(await spawnNodeInNetns(ns, server('host-service', 9998, '0.0.0.0')));
  hostServices.push(await spawnNodeInNetns(ns, server('allowed', 3128, '0.0.0.0')));

  const a = await spawnHostile('hostile-a', '10.77.0.0/24', 'ports = ["18090:7000"]\n');
  const b = await spawnHostile('hostile-b', '10.98.0.0/24', 'ports = ["18091:7000"]\n');
  for (const [port, ip] of [[18090, '10.77.0.2'], [18091, '10.98.0.2']] as const) {
    const seen = probeThrough(port);
    assert.equal(seen['loopback'], '', `guest ${ip} reached the host's 127.0.0.1:9999`);
    assert.equal(seen['hostsvc'], '', `guest ${ip} reached a host service on its gateway`);
    assert.equal(seen['allowed'], '', `guest ${ip} reached port 3128 without host_ports`);
    assert.equal(seen['outside'], 'outside 10.55.0.1', `guest ${ip} lost its NAT`);
  }
  assert.equal(daemon.cli(['rm', '-f', b]).code, 0);
  // Removing the second subnet leaves the first one's forward, NAT and guard.
  const seen = probeThrough(18090);
  assert.deepEqual([seen['loopback'], seen['outside']], ['', 'outside 10.55.0.1']);
  assert.equal(vms().find((v) => v.id === a)?.state, 'running');
});

test('a stopped VM frees its host port and MAC; a VM holding them blocks its start, with both VMs named', async () => {
  const aMac = vms().find((v) => v.name === 'hostile-a')!.network!.mac;
  assert.equal(daemon.cli(['stop', 'hostile-a']).code, 0);
  assert.throws(() => probeThrough(18090), 'the forward went with the stop');
  const clash = daemon.cli(['spawn', '--hac', hostileHac('hostile-c', '10.77.0.0/24', `ports = ["18090:7000"]\nmac = "${aMac}"\nhost_ports = ["3128"]\n`)]);
  assert.equal(clash.code, 0, clash.stderr);
  await waitFor('the probe listener of hostile-c', 90_000, () => (daemon.cli(['logs', 'hostile-c']).stdout.includes('probe listening') ? true : undefined));
  const seen = probeThrough(18090);
  assert.equal(seen['allowed'], 'allowed 10.77.0.3', 'host_ports opens 3128 on the gateway');
  assert.equal(seen['hostsvc'], '');

  const start = daemon.cli(['start', 'hostile-a']);
  assert.equal(start.code, 1);
  assert.match(start.stderr, /network\.mac .* of VM hostile-a \(\w+\) is already used by VM hostile-c \(\w+\)/);
  const other = daemon.cli(['spawn', '--hac', hostileHac('hostile-d', '10.77.0.0/24', 'ports = ["127.0.0.1:18090:80"]\n')]);
  assert.equal(other.code, 1);
  assert.match(other.stderr, /127\.0\.0\.1:18090\/tcp of VM hostile-d \(\w+\): that host port is already forwarded to VM hostile-c/);
  assert.deepEqual(vms().map((v) => v.name).sort(), ['hostile-a', 'hostile-c']);
  assert.deepEqual(taps(), vms().filter((v) => v.name === 'hostile-c').map((v) => v.network!.tap), `only hostile-c has a TAP: ${JSON.stringify(vms().map((v) => [v.name, v.state, v.network?.tap]))}`);

  assert.equal(daemon.cli(['rm', '-f', 'hostile-c']).code, 0);
  const again = daemon.cli(['start', 'hostile-a']);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(vms().find((v) => v.name === 'hostile-a')?.network?.ip, '10.77.0.2', 'the stopped VM kept its address');
  await waitFor('hostile-a again', 90_000, () => { try { return probeThrough(18090)['outside'] === 'outside 10.55.0.1' ? true : undefined; } catch { return undefined; } });
  assert.equal(daemon.cli(['rm', '-f', 'hostile-a']).code, 0);
  assert.doesNotMatch(inNs('nft', 'list', 'ruleset'), /hypercore/, 'the last VM takes the tables with it');
});
