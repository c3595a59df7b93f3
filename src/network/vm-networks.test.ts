/**
 * NatVmNetworks against real devices and nftables in a throw-away namespace: two subnets, two
 * daemon roots, resources held while a VM runs, and the upgrade from the old shared layout.
 */
import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import type { Logger } from '../core/ports.js';
import type { NetworkSpec } from '../core/vm.js';
import { migrate } from '../store/migrations.js';
import { SqliteLeaseStore } from '../store/sqlite-lease-store.js';
import type { CommandRunner } from './command-runner.js';
import { tapNameForVm } from './ipam.js';
import { legacyBridgeNameFor } from './legacy-layout.js';
import { tableNameFor } from './nft.js';
import { createNetns, netnsSkipReason, type TestNetns } from './test-netns.js';
import { bridgeNameFor, NatVmNetworks } from './vm-networks.js';

const skip = netnsSkipReason();
const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, child: () => quiet };
const A = 'a000000000000001';
const B = 'b000000000000002';
const C = 'c000000000000003';

function spec(extra: Partial<NetworkSpec> = {}): NetworkSpec {
  return { mode: 'nat', subnet: '10.88.0.0/24', dns: [], ports: [], ...extra };
}

describe('NatVmNetworks, each test in a fresh namespace', { skip }, () => {
  let ns: TestNetns;
  const daemons: NatVmNetworks[] = [];
  const daemon = (scope: string, db = new Database(':memory:'), run: CommandRunner = ns.run): NatVmNetworks => {
    migrate(db);
    const d = new NatVmNetworks({ leases: new SqliteLeaseStore(db), logger: quiet, run, scope, describeVm: (id) => `VM ${id.slice(0, 1)}` });
    daemons.push(d);
    return d;
  };
  const ruleset = async (): Promise<string> => (await ns.run('nft', ['list', 'ruleset'])).stdout;
  const links = async (): Promise<string[]> => (JSON.parse((await ns.run('ip', ['-j', 'link', 'show'])).stdout) as { ifname: string }[]).map((l) => l.ifname);
  const guardOf = (text: string, bridge: string): boolean => text.includes(`iifname "${bridge}" ip daddr 127.0.0.0/8 drop`);
  const forwarding = async (): Promise<string> => (await ns.run('sysctl', ['-n', 'net.ipv4.ip_forward'])).stdout.trim();

  beforeEach(async () => {
    ns = await createNetns('hc-net');
    // A new namespace copies the host's ip_forward: start from off whatever the host has.
    await ns.run('sysctl', ['-w', 'net.ipv4.ip_forward=0']);
  });
  afterEach(async () => ns?.cleanup());

  test('a second subnet keeps the first one\'s guard and NAT; removing it keeps them too', async () => {
    const d = daemon('/root/one');
    const one = bridgeNameFor('10.88.0.0/24', '/root/one');
    const two = bridgeNameFor('10.99.0.0/24', '/root/one');
    await d.attach(A, spec({ ports: ['18080:80'] }));
    await d.attach(B, spec({ subnet: '10.99.0.0/24', ports: ['18081:80'] }));
    let text = await ruleset();
    assert.ok(guardOf(text, one) && guardOf(text, two), text);
    assert.match(text, new RegExp(`ip saddr 10\\.88\\.0\\.0/24 oifname != "${one}" masquerade`));
    await d.detach(B);
    text = await ruleset();
    assert.ok(guardOf(text, one) && !guardOf(text, two), text);
    assert.match(text, /dport 18080 dnat to 10\.88\.0\.2:80/);
    assert.ok(!(await links()).includes(two));
  });

  test('two daemon roots keep their rules apart; forwarding goes back off with the last table', async () => {
    const d1 = daemon('/root/one');
    const d2 = daemon('/root/two');
    await d1.attach(A, spec({ ports: ['18080:80'] }));
    await d2.attach(B, spec({ subnet: '10.99.0.0/24', ports: ['18081:80'] }));
    assert.equal(await forwarding(), '1');
    // The same subnet under another root would share (and later delete) a bridge: refused.
    await assert.rejects(d2.attach(C, spec()), /overlapping subnet: 10\.88\.0\.0\/24/);
    await d1.detach(A);
    const text = await ruleset();
    assert.doesNotMatch(text, new RegExp(tableNameFor('/root/one')));
    assert.match(text, /dport 18081 dnat to 10\.99\.0\.2:80/);
    assert.ok(guardOf(text, bridgeNameFor('10.99.0.0/24', '/root/two')));
    assert.equal(await forwarding(), '1', 'the other daemon still has a VM');
    await d2.detach(B);
    assert.equal(await forwarding(), '0');
    assert.equal((await ruleset()).trim(), '');
  });

  test('rm of a VM without a lease runs no command once the shared pieces are gone, but checks them once after a restart', async () => {
    const commands: string[] = [];
    const counting: CommandRunner = (file, args) => (commands.push(`${file} ${args.join(' ')}`), ns.run(file, args));
    const db = new Database(':memory:');
    const first = daemon('/root/one', db, counting);
    await first.attach(A, spec());
    await first.detach(A);
    assert.equal((await ruleset()).trim(), '');
    commands.length = 0;
    await first.detach(C);
    assert.deepEqual(commands, [], 'a VM that never had a lease holds nothing');

    // A daemon killed after releasing the last lease but before the tables went: the next one
    // removes them on its first rm, lease or not.
    await first.attach(A, spec());
    new SqliteLeaseStore(db).release(A);
    const second = daemon('/root/one', db, counting);
    commands.length = 0;
    await second.detach(C);
    assert.ok(commands.length > 0);
    assert.doesNotMatch(await ruleset(), new RegExp(tableNameFor('/root/one')));
    commands.length = 0;
    await second.detach(B);
    assert.deepEqual(commands, []);
  });

  test('a host port or MAC is held by one running VM at a time; stop frees it, start takes it back', async () => {
    const d = daemon('/root/one');
    const a = await d.attach(A, spec({ ports: ['18080:80'], mac: '02:00:00:00:00:0a' }));
    await assert.rejects(d.attach(B, spec({ ports: ['127.0.0.1:18080:8080'] })), /port forward 127\.0\.0\.1:18080\/tcp of VM b: that host port is already forwarded to VM a/);
    await assert.rejects(d.attach(C, spec({ mac: '02:00:00:00:00:0a' })), /network\.mac 02:00:00:00:00:0a of VM c is already used by VM a/);
    // A second daemon sees the first one's rules too.
    await assert.rejects(daemon('/root/two').attach(C, spec({ subnet: '10.99.0.0/24', ports: ['18080:80'] })), /already forwarded to VM a/);
    assert.deepEqual((await links()).filter((l) => l.startsWith('hc') && !l.startsWith('hcbr')), [a.tap], 'refused VMs made no TAP');

    await d.release(A);
    assert.doesNotMatch(await ruleset(), /18080/);
    const b = await d.attach(B, spec({ ports: ['18080:8080'], mac: '02:00:00:00:00:0a' }));
    await assert.rejects(d.attach(A, spec({ ports: ['18080:80'], mac: '02:00:00:00:00:0a' })), /of VM a is already used by VM b/);
    // The refused start kept A's address, and only B has a TAP.
    assert.deepEqual((await links()).filter((l) => l.startsWith('hc') && !l.startsWith('hcbr')), [b.tap]);
    await d.detach(B);
    assert.equal((await d.attach(A, spec({ ports: ['18080:80'] }))).ip, a.ip);
  });

  test('upgrade: the old shared table loses this daemon\'s rules only, and its old bridge goes', async () => {
    const oldBridge = legacyBridgeNameFor('10.88.0.0/24');
    const tap = tapNameForVm(A);
    // What the previous version left: its bridge with A's TAP, and the shared table with A's
    // forward, the base rules of A's bridge and another root's VM's forward.
    await ns.run('ip', ['link', 'add', oldBridge, 'type', 'bridge']);
    await ns.run('ip', ['addr', 'add', '10.88.0.1/24', 'dev', oldBridge]);
    await ns.run('ip', ['link', 'set', oldBridge, 'up']);
    await ns.run('ip', ['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
    await ns.run('ip', ['link', 'set', tap, 'master', oldBridge, 'up']);
    const t = 'ip hypercore';
    await ns.run('nft', [[
      `add table ${t}`,
      `add chain ${t} postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
      `add chain ${t} prerouting { type nat hook prerouting priority dstnat; policy accept; }`,
      `add chain ${t} output { type nat hook output priority -100; policy accept; }`,
      `add chain ${t} forward { type filter hook forward priority filter; policy accept; }`,
      `add chain ${t} guard { type filter hook prerouting priority raw; policy accept; }`,
      `add rule ${t} postrouting ip saddr 10.88.0.0/24 oifname != "${oldBridge}" masquerade comment "hc-base"`,
      `add rule ${t} forward iifname "${oldBridge}" accept comment "hc-base"`,
      `add rule ${t} guard iifname "${oldBridge}" ip daddr 127.0.0.0/8 drop comment "hc-base"`,
      `add rule ${t} prerouting fib daddr type local tcp dport 18080 dnat to 10.88.0.2:80 comment "hc:${A}"`,
      `add rule ${t} prerouting fib daddr type local tcp dport 18099 dnat to 10.66.0.2:80 comment "hc:ffff000000000009"`,
    ].join('; ')]);
    const db = new Database(':memory:');
    migrate(db);
    const leases = new SqliteLeaseStore(db);
    leases.claim('10.88.0.0/24', A, () => '10.88.0.2');
    const d = new NatVmNetworks({ leases, logger: quiet, run: ns.run, scope: '/root/one' });
    // The running VM is re-attached by the daemon's start-up reconcile.
    await d.attach(A, spec({ ports: ['18080:80'] }));
    const old = (await ns.run('nft', ['list', 'table', 'ip', 'hypercore'])).stdout;
    assert.doesNotMatch(old, /hc-base|hc:a000/);
    assert.match(old, /dport 18099 .*hc:ffff000000000009/, "another root's rule stays");
    assert.ok(!(await links()).includes(oldBridge));
    const master = JSON.parse((await ns.run('ip', ['-j', 'link', 'show', 'dev', tap])).stdout) as { master?: string }[];
    assert.equal(master[0]?.master, bridgeNameFor('10.88.0.0/24', '/root/one'), 'the running TAP moved to the new bridge');
    await ns.run('nft', ['delete table ip hypercore']);
    await d.detach(A);
    assert.equal((await ruleset()).trim(), '');
  });

  test('with metadata listeners: the bridge gets one, its guests are told the host serves 169.254.169.254, and it goes with the bridge', async () => {
    const calls: string[] = [];
    const metadata = {
      ensure: async (b: { bridge: string; subnet: string; gateway: string }) => {
        calls.push(`ensure ${b.bridge} ${b.subnet} ${b.gateway}`);
        return 40555;
      },
      close: async (bridge: string) => void calls.push(`close ${bridge}`),
    };
    const db = new Database(':memory:');
    migrate(db);
    const d = new NatVmNetworks({ leases: new SqliteLeaseStore(db), logger: quiet, run: ns.run, scope: '/root/md', metadata });
    daemons.push(d);
    const bridge = bridgeNameFor('10.88.0.0/24', '/root/md');
    const a = await d.attach(A, spec());
    const b = await d.attach(B, spec());
    assert.equal(a.metadataOnHost, true);
    assert.equal(b.metadataOnHost, true);
    assert.match(await ruleset(), new RegExp(`iifname "${bridge}" ip daddr 169\\.254\\.169\\.254 tcp dport 80 dnat to 10\\.88\\.0\\.1:40555`));
    await d.detach(A);
    assert.ok(!calls.includes(`close ${bridge}`), 'B still uses the bridge');
    await d.detach(B);
    assert.deepEqual(calls, [`ensure ${bridge} 10.88.0.0/24 10.88.0.1`, `ensure ${bridge} 10.88.0.0/24 10.88.0.1`, `close ${bridge}`]);
    const plain = await daemon('/root/plain').attach(C, spec({ subnet: '10.77.0.0/24' }));
    assert.equal(plain.metadataOnHost, undefined, 'without listeners the guest serves its own');
  });
});
