import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FORWARDING_MARKER, IpForwarding } from './ip-forwarding.js';
import { createNetns, netnsSkipReason, type TestNetns } from './test-netns.js';

const skip = netnsSkipReason();

describe('IpForwarding, each test in a fresh namespace', { skip }, () => {
  let ns: TestNetns;
  let forwarding: IpForwarding;
  const logged: string[] = [];
  const log = { info: (_obj: object, msg?: string) => logged.push(msg ?? '') };
  const value = async (): Promise<string> => (await ns.run('sysctl', ['-n', 'net.ipv4.ip_forward'])).stdout.trim();
  beforeEach(async () => {
    ns = await createNetns('hc-net');
    forwarding = new IpForwarding(ns.run);
    logged.length = 0;
  });
  afterEach(async () => ns?.cleanup());

  test('switched on from off, it goes back off once no Hypercore NAT table is left', async () => {
    // A new namespace copies the host's ip_forward: start from off whatever the host has.
    await ns.run('sysctl', ['-w', 'net.ipv4.ip_forward=0']);
    assert.equal(await forwarding.enable(log), true);
    assert.equal(await forwarding.enable(log), false);
    assert.equal(await value(), '1');
    assert.match(logged[0]!, /net.ipv4.ip_forward=1/);
    // Another daemon's table (and the old shared one) still needs it.
    await ns.run('nft', ['add table ip hypercore-0therd4e; add table ip hypercore']);
    assert.equal(await forwarding.restoreIfUnused(log), false);
    await ns.run('nft', ['delete table ip hypercore-0therd4e']);
    assert.equal(await forwarding.restoreIfUnused(log), false);
    assert.equal(await value(), '1');
    await ns.run('nft', ['delete table ip hypercore']);
    assert.equal(await forwarding.restoreIfUnused(log), true);
    assert.equal(await value(), '0');
    assert.doesNotMatch((await ns.run('nft', ['list', 'tables'])).stdout, new RegExp(FORWARDING_MARKER));
    assert.equal(await forwarding.restoreIfUnused(log), false);
  });

  test('found on, it stays on', async () => {
    await ns.run('sysctl', ['-w', 'net.ipv4.ip_forward=1']);
    assert.equal(await forwarding.enable(log), false);
    assert.equal(await forwarding.restoreIfUnused(log), false);
    assert.equal(await value(), '1');
    assert.deepEqual(logged, []);
  });
});
