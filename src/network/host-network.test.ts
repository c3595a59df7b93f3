import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { HostNetwork } from './host-network.js';
import { createNetns, netnsSkipReason, type TestNetns } from './test-netns.js';

const skip = netnsSkipReason();

describe('HostNetwork, each test in a fresh namespace', { skip }, () => {
  let ns: TestNetns;
  let net: HostNetwork;
  beforeEach(async () => {
    ns = await createNetns('hc-net');
    net = new HostNetwork(ns.run);
  });
  afterEach(async () => ns?.cleanup());

  test('bridge + tap lifecycle is idempotent and leaves nothing behind', async () => {
    for (let i = 0; i < 2; i++) {
      await net.ensureBridge('hcbrtest', '10.88.0.1/16');
      await net.createTap('hc0123456789ab', 'hcbrtest');
    }
    const taps = await net.listTaps('hc');
    assert.deepEqual(taps, [{ name: 'hc0123456789ab', master: 'hcbrtest', up: true }]);
    const { stdout } = await ns.run('ip', ['-j', 'addr', 'show', 'dev', 'hcbrtest']);
    const addrs = (JSON.parse(stdout) as Array<{ flags: string[]; addr_info: Array<{ family: string; local: string; prefixlen: number }> }>)[0]!;
    assert.ok(addrs.flags.includes('UP'));
    assert.deepEqual(addrs.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`), ['10.88.0.1/16']);
    assert.deepEqual(await net.listTaps('other'), []);

    for (let i = 0; i < 2; i++) {
      await net.deleteTap('hc0123456789ab');
      await net.deleteBridge('hcbrtest');
    }
    assert.deepEqual(await net.listTaps('hc'), []);
    const links = await ns.run('ip', ['-j', 'link', 'show']);
    assert.deepEqual((JSON.parse(links.stdout) as Array<{ ifname: string }>).map((l) => l.ifname), ['lo']);
  });

  test('a stale non-tap interface with the TAP name is replaced', async () => {
    await net.ensureBridge('hcbrtest', '10.88.0.1/16');
    await ns.run('ip', ['tuntap', 'add', 'dev', 'hcstale', 'mode', 'tun']);
    assert.deepEqual(await net.listTaps('hcstale'), []);
    await net.createTap('hcstale', 'hcbrtest');
    assert.deepEqual(await net.listTaps('hcstale'), [{ name: 'hcstale', master: 'hcbrtest', up: true }]);
    await net.deleteTap('hcstale');
    await net.deleteBridge('hcbrtest');
  });

  test('ensureBridge refuses an existing interface that is not a bridge', async () => {
    // veth, not dummy: the dummy module is not available everywhere.
    await ns.run('ip', ['link', 'add', 'hcdummy', 'type', 'veth', 'peer', 'name', 'hcdummyp']);
    await assert.rejects(net.ensureBridge('hcdummy', '10.88.0.1/16'), /hcdummy exists but is not a bridge/);
    await ns.run('ip', ['link', 'del', 'hcdummy']);
  });

  test('conflictingRoute finds a foreign overlapping route but not our own bridge', async () => {
    await net.ensureBridge('hcbrtest', '10.88.0.1/16');
    assert.equal(await net.conflictingRoute('10.88.0.0/16', 'hcbrtest'), undefined);
    await ns.run('ip', ['route', 'add', '10.88.5.0/24', 'dev', 'lo']);
    const route = await net.conflictingRoute('10.88.0.0/16', 'hcbrtest');
    assert.equal(route?.dst, '10.88.5.0/24');
    assert.equal(route?.dev, 'lo');
    await assert.rejects(net.assertNoConflict('10.88.0.0/16', 'hcbrtest'), /overlapping subnet: 10.88.0.0\/16 overlaps the existing route 10.88.5.0\/24 \(dev lo\)/);
    assert.equal(await net.conflictingRoute('10.89.0.0/16', 'hcbrtest'), undefined);
    await ns.run('ip', ['route', 'del', '10.88.5.0/24', 'dev', 'lo']);
    await net.deleteBridge('hcbrtest');
  });

  test('defaultRouteInterface and enableForwarding', async () => {
    assert.equal(await net.defaultRouteInterface(), undefined);
    await ns.run('ip', ['link', 'add', 'hcup0', 'type', 'veth', 'peer', 'name', 'hcup0p']);
    await ns.run('ip', ['addr', 'add', '192.0.2.2/24', 'dev', 'hcup0']);
    await ns.run('ip', ['link', 'set', 'hcup0p', 'up']);
    await ns.run('ip', ['link', 'set', 'hcup0', 'up']);
    await ns.run('ip', ['route', 'add', 'default', 'via', '192.0.2.1']);
    assert.equal(await net.defaultRouteInterface(), 'hcup0');

    await ns.run('ip', ['link', 'del', 'hcup0']);
  });
});
