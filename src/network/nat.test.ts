import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { forwardsClash, heldForwards, NatRules } from './nat.js';
import { Nft } from './nft.js';
import { createNetns, netnsSkipReason, spawnNodeInNetns, type TestNetns } from './test-netns.js';

const skip = netnsSkipReason();

interface NftItem {
  table?: { family: string; name: string };
  chain?: { table: string; name: string; type?: string; hook?: string; prio?: number };
  rule?: { table: string; chain: string; comment?: string; handle: number };
}

async function ruleset(ns: TestNetns): Promise<NftItem[]> {
  const { stdout } = await ns.run('nft', ['-j', 'list', 'ruleset']);
  return ((JSON.parse(stdout) as { nftables: NftItem[] }).nftables).filter((i) => !('metainfo' in i));
}

function summary(items: NftItem[]): { tables: string[]; chains: string[]; rules: string[] } {
  return {
    tables: items.flatMap((i) => (i.table ? [`${i.table.family} ${i.table.name}`] : [])),
    chains: items.flatMap((i) => (i.chain ? [`${i.chain.name} ${i.chain.type}/${i.chain.hook}/${i.chain.prio}`] : [])).sort(),
    rules: items.flatMap((i) => (i.rule ? [`${i.rule.chain} ${i.rule.comment ?? ''}`] : [])).sort(),
  };
}

const VM_A = 'aaaa000000000001';
const VM_B = 'bbbb000000000002';

describe('NatRules, each test in a fresh namespace', { skip }, () => {
  let ns: TestNetns;
  let nat: NatRules;
  beforeEach(async () => {
    ns = await createNetns('hc-net');
    nat = new NatRules(ns.run, 'hypercore-test');
    // route_localnet is set per device, so the bridges have to exist.
    await ns.run('ip', ['link', 'add', 'hcbrtest', 'type', 'bridge']);
    await ns.run('ip', ['link', 'add', 'hcbrtwo', 'type', 'bridge']);
  });
  afterEach(async () => ns?.cleanup());

  const bridgeRules = async (bridge: string): Promise<string[]> => summary(await ruleset(ns)).rules.filter((r) => r.endsWith(`hc-br:${bridge}`));

  test('ensureBridge creates the table, its chains and one set of rules per bridge; repeating it does not duplicate', async () => {
    const chains = ['forward filter/forward/0', 'guard filter/prerouting/-300', 'host_ports undefined/undefined/undefined', 'input filter/input/0', 'output nat/output/-100', 'postrouting nat/postrouting/100', 'prerouting nat/prerouting/-100'];
    await nat.ensureBridge({ subnet: '10.88.0.0/16', bridge: 'hcbrtest' });
    const once = summary(await ruleset(ns));
    assert.deepEqual(once.tables, ['ip hypercore-test']);
    assert.deepEqual(once.chains, chains);
    await nat.ensureBridge({ subnet: '10.88.0.0/16', bridge: 'hcbrtest', outInterface: 'eth9' });
    assert.deepEqual(summary(await ruleset(ns)), once);
    const listing = (await ns.run('nft', ['list', 'table', 'ip', 'hypercore-test'])).stdout;
    assert.match(listing, /ip saddr 10\.88\.0\.0\/16 oifname != "hcbrtest" oifname "eth9" masquerade/);
    assert.match(listing, /iifname "hcbrtest" ip daddr 10\.88\.0\.1 meta l4proto \{ tcp, udp \} th dport 53 accept/);
    assert.equal((await ns.run('sysctl', ['-n', 'net.ipv4.conf.hcbrtest.route_localnet'])).stdout.trim(), '1');
    assert.equal(await nat.exists(), true);
    await nat.destroy();
    await nat.destroy();
    assert.deepEqual(await ruleset(ns), []);
  });

  test('a second bridge leaves the first one\'s NAT and loopback guard in place; removing it leaves them too', async () => {
    await nat.ensureBridge({ subnet: '10.88.0.0/16', bridge: 'hcbrtest' });
    const first = await bridgeRules('hcbrtest');
    assert.ok(first.some((r) => r.startsWith('guard ')) && first.some((r) => r.startsWith('postrouting ')));
    await nat.ensureBridge({ subnet: '10.99.0.0/24', bridge: 'hcbrtwo' });
    assert.deepEqual(await bridgeRules('hcbrtest'), first);
    assert.equal((await bridgeRules('hcbrtwo')).length, first.length);
    assert.deepEqual(await nat.bridgesWithRules(), ['hcbrtest', 'hcbrtwo']);
    assert.equal(await nat.removeBridge('hcbrtwo'), first.length);
    assert.deepEqual(await bridgeRules('hcbrtest'), first);
    assert.deepEqual(await bridgeRules('hcbrtwo'), []);
  });

  test('two tables (two daemon roots) are independent: destroying one keeps the other\'s forwards and guard', async () => {
    const other = new NatRules(ns.run, 'hypercore-other');
    await nat.ensureBridge({ subnet: '10.88.0.0/16', bridge: 'hcbrtest' });
    await other.ensureBridge({ subnet: '10.99.0.0/24', bridge: 'hcbrtwo' });
    await other.addVm({ vmId: VM_B, bridge: 'hcbrtwo', subnet: '10.99.0.0/24', guestAddress: '10.99.0.2', forwards: [{ hostPort: 2222, guestPort: 22, protocol: 'tcp' }], hostPorts: [], open: false });
    await nat.destroy();
    assert.deepEqual(await other.vmIdsWithRules(), [VM_B]);
    assert.ok((await bridgeRules('hcbrtwo')).some((r) => r.startsWith('guard ')));
  });

  test('addVm tags rules per VM and replaces them on repeat; removeForVm removes only that VM', async () => {
    await nat.ensureBridge({ subnet: '10.88.0.0/16', bridge: 'hcbrtest' });
    const a = { vmId: VM_A, bridge: 'hcbrtest', subnet: '10.88.0.0/16', guestAddress: '10.88.0.2', hostPorts: [{ port: 3128, protocol: 'tcp' as const }], open: true };
    await nat.addVm({ ...a, forwards: [{ hostPort: 8080, guestPort: 80, protocol: 'tcp' }, { hostAddress: '127.0.0.1', hostPort: 5353, guestPort: 53, protocol: 'udp' }] });
    await nat.addVm({ ...a, forwards: [{ hostPort: 8080, guestPort: 80, protocol: 'tcp' }, { hostAddress: '127.0.0.1', hostPort: 5353, guestPort: 53, protocol: 'udp' }] });
    await nat.addVm({ vmId: VM_B, bridge: 'hcbrtest', subnet: '10.88.0.0/16', guestAddress: '10.88.0.3', forwards: [{ hostPort: 2222, guestPort: 22, protocol: 'tcp' }], hostPorts: [], open: false });
    assert.deepEqual(await nat.vmIdsWithRules(), [VM_A, VM_B]);
    const listing = (await ns.run('nft', ['list', 'table', 'ip', 'hypercore-test'])).stdout;
    assert.match(listing, /fib daddr type local tcp dport 8080 dnat to 10\.88\.0\.2:80 comment "hc:aaaa000000000001"/);
    assert.match(listing, /ip daddr 127\.0\.0\.1 udp dport 5353 dnat to 10\.88\.0\.2:53 comment "hc:aaaa000000000001"/);
    assert.match(listing, /iifname "hcbrtest" ip saddr 10\.88\.0\.2 ip daddr 10\.88\.0\.1 tcp dport 3128 accept comment "hc:aaaa000000000001"/);
    assert.match(listing, /set open4 \{[^}]*elements = \{ 10\.88\.0\.2 \}/);
    const vmRules = summary(await ruleset(ns)).rules.filter((r) => r.includes('hc:'));
    assert.equal(vmRules.length, 7, 'each forward is one prerouting and one output rule, plus one host port rule');
    assert.deepEqual(heldForwards(await new Nft(ns.run).hypercoreTables('ip')).map((h) => `${h.vmId} ${h.hostAddress ?? '*'}:${h.hostPort}/${h.protocol}`).sort(),
      [`${VM_A} *:8080/tcp`, `${VM_A} 127.0.0.1:5353/udp`, `${VM_B} *:2222/tcp`]);

    assert.equal(await nat.removeForVm(VM_A, '10.88.0.2'), 5);
    assert.equal(await nat.removeForVm(VM_A, '10.88.0.2'), 0);
    assert.doesNotMatch((await ns.run('nft', ['list', 'table', 'ip', 'hypercore-test'])).stdout, /elements/);
    assert.deepEqual(await nat.vmIdsWithRules(), [VM_B]);
    assert.equal((await bridgeRules('hcbrtest')).length, 16, 'bridge rules untouched');
    await assert.rejects(nat.addVm({ vmId: 'x" accept', bridge: 'hcbrtest', subnet: '10.88.0.0/16', guestAddress: '10.88.0.2', forwards: [], hostPorts: [], open: false }), /VM id/);
    await nat.destroy();
    assert.deepEqual(await nat.vmIdsWithRules(), []);
    assert.equal(await nat.removeForVm(VM_B), 0);
  });

  test('portInUse sees a listener started inside the namespace', async () => {
    assert.equal(await nat.portInUse('0.0.0.0', 18080, 'tcp'), false);
    const listener = await spawnNodeInNetns(ns.name, "require('net').createServer().listen(18080,'127.0.0.1',()=>console.log('ready'))");
    try {
      assert.equal(await nat.portInUse('127.0.0.1', 18080, 'tcp'), true);
      assert.equal(await nat.portInUse('0.0.0.0', 18080, 'tcp'), true);
      assert.equal(await nat.portInUse('10.1.2.3', 18080, 'tcp'), false);
      assert.equal(await nat.portInUse('127.0.0.1', 18080, 'udp'), false);
    } finally {
      await listener.stop();
    }
    assert.equal(await nat.portInUse('127.0.0.1', 18080, 'tcp'), false);
  });
});

test('forwardsClash: a forward without an address clashes with any on the same port and protocol', () => {
  assert.equal(forwardsClash({ hostPort: 80, protocol: 'tcp' }, { hostAddress: '127.0.0.1', hostPort: 80, protocol: 'tcp' }), true);
  assert.equal(forwardsClash({ hostAddress: '10.0.0.1', hostPort: 80, protocol: 'tcp' }, { hostAddress: '127.0.0.1', hostPort: 80, protocol: 'tcp' }), false);
  assert.equal(forwardsClash({ hostPort: 80, protocol: 'tcp' }, { hostPort: 80, protocol: 'udp' }), false);
});
