import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NatRules } from './nat.js';
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

describe('NatRules, each test in a fresh namespace', { skip }, () => {
  let ns: TestNetns;
  let nat: NatRules;
  beforeEach(async () => {
    ns = await createNetns('hc-net');
    nat = new NatRules(ns.run);
    // route_localnet is set per device, so the bridge has to exist.
    await ns.run('ip', ['link', 'add', 'hcbrtest', 'type', 'bridge']);
  });
  afterEach(async () => ns?.cleanup());

  test('ensure creates exactly the expected table and chains, and twice does not duplicate', async () => {
    const expected = {
      tables: ['ip hypercore'],
      chains: ['forward filter/forward/0', 'guard filter/prerouting/-300', 'output nat/output/-100', 'postrouting nat/postrouting/100', 'prerouting nat/prerouting/-100'],
      rules: ['forward hc-base', 'forward hc-base', 'guard hc-base', 'postrouting hc-base', 'postrouting hc-base'],
    };
    await nat.ensure('10.88.0.0/16', 'hcbrtest');
    assert.deepEqual(summary(await ruleset(ns)), expected);
    await nat.ensure('10.88.0.0/16', 'hcbrtest', 'eth9');
    assert.deepEqual(summary(await ruleset(ns)), expected);
    const listing = (await ns.run('nft', ['list', 'table', 'ip', 'hypercore'])).stdout;
    assert.match(listing, /ip saddr 10\.88\.0\.0\/16 oifname != "hcbrtest" oifname "eth9" masquerade/);
    assert.equal((await ns.run('sysctl', ['-n', 'net.ipv4.conf.hcbrtest.route_localnet'])).stdout.trim(), '1');
    assert.equal(await nat.exists(), true);
    await nat.destroy();
    await nat.destroy();
    assert.deepEqual(await ruleset(ns), []);
  });

  test('addPortForward tags rules per VM; removeForVm removes only that VM', async () => {
    await nat.ensure('10.88.0.0/16', 'hcbrtest');
    await nat.addPortForward({ vmId: 'aaaa000000000001', hostPort: 8080, protocol: 'tcp', guestAddress: '10.88.0.2', guestPort: 80 });
    await nat.addPortForward({ vmId: 'aaaa000000000001', hostAddress: '127.0.0.1', hostPort: 5353, protocol: 'udp', guestAddress: '10.88.0.2', guestPort: 53 });
    await nat.addPortForward({ vmId: 'bbbb000000000002', hostPort: 2222, protocol: 'tcp', guestAddress: '10.88.0.3', guestPort: 22 });
    assert.deepEqual(await nat.vmIdsWithRules(), ['aaaa000000000001', 'bbbb000000000002']);
    const listing = (await ns.run('nft', ['list', 'table', 'ip', 'hypercore'])).stdout;
    assert.match(listing, /fib daddr type local tcp dport 8080 dnat to 10\.88\.0\.2:80 comment "hc:aaaa000000000001"/);
    assert.match(listing, /ip daddr 127\.0\.0\.1 udp dport 5353 dnat to 10\.88\.0\.2:53 comment "hc:aaaa000000000001"/);
    const vmRules = summary(await ruleset(ns)).rules.filter((r) => r.includes('hc:'));
    assert.equal(vmRules.length, 6, 'each forward is one prerouting and one output rule');

    assert.equal(await nat.removeForVm('aaaa000000000001'), 4);
    assert.equal(await nat.removeForVm('aaaa000000000001'), 0);
    assert.deepEqual(await nat.vmIdsWithRules(), ['bbbb000000000002']);
    assert.equal(summary(await ruleset(ns)).rules.filter((r) => r.endsWith('hc-base')).length, 5, 'base rules untouched');
    await assert.rejects(nat.addPortForward({ vmId: 'x" accept', hostPort: 1, protocol: 'tcp', guestAddress: '10.88.0.2', guestPort: 1 }), /VM id/);
    await nat.destroy();
    assert.deepEqual(await nat.vmIdsWithRules(), []);
    assert.equal(await nat.removeForVm('bbbb000000000002'), 0);
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
