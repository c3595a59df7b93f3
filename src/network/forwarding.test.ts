/**
 * End-to-end check of "nat" mode with real packets, entirely inside throw-away namespaces:
 *   host (hc-net-*)  : Hypercore bridge 10.99.0.1/24, NatRules, uplink 10.77.0.1/24
 *   guest (hc-guest-*): veth on the bridge, 10.99.0.2, default route via the gateway, echo server
 *   outside (hc-net-*-ext): the uplink's peer 10.77.0.2, standing in for another machine
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runCommand } from '../system/command.js';
import { HostNetwork } from './host-network.js';
import { NatRules } from './nat.js';
import { createNetns, netnsSkipReason, spawnNodeInNetns, tcpClientScript, type NetnsProcess, type TestNetns } from './test-netns.js';

const skip = netnsSkipReason();
const BRIDGE = 'hcbrfwd';
const VM = 'f00d000000000001';

async function clientSays(ns: string, host: string, port: number, message: string): Promise<string> {
  const { stdout } = await runCommand('ip', ['netns', 'exec', ns, process.execPath, '-e', tcpClientScript(host, port, message)], { timeoutMs: 10_000 });
  return stdout;
}

describe('nat mode forwards real traffic between namespaces', { skip }, () => {
  const namespaces: TestNetns[] = [];
  const processes: NetnsProcess[] = [];
  let host: TestNetns;
  let guest: TestNetns;
  let outside: TestNetns;

  before(async () => {
    host = await createNetns('hc-net');
    namespaces.push(host);
    guest = await createNetns('hc-guest');
    namespaces.push(guest);
    outside = await createNetns(`${host.name}-ext`);
    namespaces.push(outside);

    const net = new HostNetwork(host.run);
    await net.ensureBridge(BRIDGE, '10.99.0.1/24');
    // The guest's "NIC": a veth whose host end is enslaved like a TAP would be.
    await host.run('ip', ['link', 'add', 'hcvfwd', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', guest.name]);
    await host.run('ip', ['link', 'set', 'hcvfwd', 'master', BRIDGE, 'up']);
    await guest.run('ip', ['addr', 'add', '10.99.0.2/24', 'dev', 'eth0']);
    await guest.run('ip', ['link', 'set', 'eth0', 'up']);
    await guest.run('ip', ['route', 'add', 'default', 'via', '10.99.0.1']);
    // The host's uplink to "another machine".
    await host.run('ip', ['link', 'add', 'hcufwd', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outside.name]);
    await host.run('ip', ['addr', 'add', '10.77.0.1/24', 'dev', 'hcufwd']);
    await host.run('ip', ['link', 'set', 'hcufwd', 'up']);
    await outside.run('ip', ['addr', 'add', '10.77.0.2/24', 'dev', 'eth0']);
    await outside.run('ip', ['link', 'set', 'eth0', 'up']);

    // A new namespace copies the host's ip_forward: start from off whatever the host has.
    await host.run('sysctl', ['-w', 'net.ipv4.ip_forward=0']);
    assert.equal(await net.enableForwarding({ info: () => undefined }), true);
    const nat = new NatRules(host.run);
    await nat.ensure('10.99.0.0/24', BRIDGE);
    await nat.addPortForward({ vmId: VM, hostPort: 18080, protocol: 'tcp', guestAddress: '10.99.0.2', guestPort: 7000 });

    // Echo server in the guest that prefixes the peer address, so masquerading is observable.
    const echo = "require('net').createServer(s=>s.on('data',d=>s.end(s.remoteAddress+' '+d))).listen(PORT,'ADDR',()=>console.log('ready'))";
    processes.push(await spawnNodeInNetns(guest.name, echo.replace('PORT', '7000').replace('ADDR', '10.99.0.2')));
    processes.push(await spawnNodeInNetns(outside.name, echo.replace('PORT', '9000').replace('ADDR', '10.77.0.2')));
  });

  after(async () => {
    for (const p of processes) await p.stop().catch(() => undefined);
    for (const ns of namespaces.reverse()) await ns.cleanup();
  });

  test('host -> bridge address:hostPort reaches the guest (output chain DNAT)', async () => {
    assert.equal(await clientSays(host.name, '10.99.0.1', 18080, 'ping'), '10.99.0.1 ping');
  });

  test('host -> 127.0.0.1:hostPort reaches the guest (route_localnet + masquerade)', async () => {
    // The guest sees the gateway, not 127.0.0.1, as the peer: it could not reply to loopback.
    assert.equal(await clientSays(host.name, '127.0.0.1', 18080, 'local'), '10.99.0.1 local');
  });

  test('another machine -> host uplink:hostPort reaches the guest (prerouting DNAT)', async () => {
    assert.equal(await clientSays(outside.name, '10.77.0.1', 18080, 'remote'), '10.77.0.2 remote');
  });

  test('guest -> outside is masqueraded behind the host', async () => {
    assert.equal(await clientSays(guest.name, '10.77.0.2', 9000, 'out'), '10.77.0.1 out');
  });

  test('guest cannot reach the host loopback through the bridge', async () => {
    processes.push(await spawnNodeInNetns(host.name, "require('net').createServer(s=>s.end('secret')).listen(9999,'127.0.0.1',()=>console.log('ready'))"));
    // A hostile guest: its own loopback routes gone, 127.0.0.1 routed to the host. Without the
    // guard rule, route_localnet on the bridge would let this reach the host's loopback service.
    await guest.run('ip', ['addr', 'flush', 'dev', 'lo']);
    // ...and accepts replies from 127.0.0.1 on eth0, which a stock kernel drops as martians.
    await guest.run('sysctl', ['-w', 'net.ipv4.conf.eth0.route_localnet=1']);
    await guest.run('ip', ['route', 'add', '127.0.0.1/32', 'via', '10.99.0.1', 'dev', 'eth0']);
    try {
      await assert.rejects(clientSays(guest.name, '127.0.0.1', 9999, 'x'), /timeout|ECONNREFUSED|exited/);
    } finally {
      await guest.run('ip', ['route', 'del', '127.0.0.1/32']);
      await guest.run('ip', ['addr', 'add', '127.0.0.1/8', 'dev', 'lo']);
    }
  });

  test('after removeForVm the forward is gone', async () => {
    const nat = new NatRules(host.run);
    assert.equal(await nat.removeForVm(VM), 2);
    await assert.rejects(clientSays(host.name, '10.99.0.1', 18080, 'gone'));
  });
});
