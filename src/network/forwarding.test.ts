/**
 * End-to-end check of "nat" mode with real packets, entirely inside throw-away namespaces:
 *   host (hc-net-*)   : two Hypercore bridges, 10.99.0.1/24 and 10.98.0.1/24, this daemon's tables,
 *                       uplink 10.77.0.1/24
 *   guests (hc-guest-*): a veth on a bridge each (standing in for a TAP), default route via the
 *                       gateway: a1 10.99.0.2 and a2 10.99.0.3 on the first bridge, b 10.98.0.2 on
 *                       the second
 *   outside (hc-net-*-ext): the uplink's peer 10.77.0.2, standing in for another machine
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runCommand } from '../system/command.js';
import { HostNetwork } from './host-network.js';
import { IpForwarding } from './ip-forwarding.js';
import { LinkGuard } from './link-guard.js';
import { NatRules, type VmNat } from './nat.js';
import { createNetns, netnsSkipReason, spawnNodeInNetns, tcpClientScript, type NetnsProcess, type TestNetns } from './test-netns.js';

const skip = netnsSkipReason();
const TABLE = 'hypercore-fwdtest';
/** The first bridge's metadata listener (standing in for the daemon's; a fixed port is safe in a private namespace). */
const METADATA_PORT = 40123;

async function clientSays(ns: string, host: string, port: number, message: string): Promise<string> {
  const { stdout } = await runCommand('ip', ['netns', 'exec', ns, process.execPath, '-e', tcpClientScript(host, port, message)], { timeoutMs: 10_000 });
  return stdout;
}

const refused = /timeout|ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|exited|failed/;

interface Guest {
  vm: string;
  ns: TestNetns;
  tap: string;
  mac: string;
  ip: string;
  bridge: string;
  subnet: string;
}

describe('nat mode forwards real traffic between namespaces, and no further', { skip }, () => {
  const namespaces: TestNetns[] = [];
  const processes: NetnsProcess[] = [];
  let host: TestNetns;
  let outside: TestNetns;
  let nat: NatRules;
  let links: LinkGuard;
  const guests: Record<'a1' | 'a2' | 'b', Guest> = {} as Record<'a1' | 'a2' | 'b', Guest>;
  const vmNat = (g: Guest, extra: Partial<VmNat> = {}): VmNat => ({ vmId: g.vm, bridge: g.bridge, subnet: g.subnet, guestAddress: g.ip, forwards: [], hostPorts: [], open: false, ...extra });

  before(async () => {
    host = await createNetns('hc-net');
    namespaces.push(host);
    outside = await createNetns(`${host.name}-ext`);
    namespaces.push(outside);
    const net = new HostNetwork(host.run);
    nat = new NatRules(host.run, TABLE);
    links = new LinkGuard(host.run, TABLE);
    // A new namespace copies the host's ip_forward: start from off whatever the host has.
    await host.run('sysctl', ['-w', 'net.ipv4.ip_forward=0']);
    assert.equal(await new IpForwarding(host.run).enable({ info: () => undefined }), true);

    const layout = [
      { key: 'a1', vm: 'a100000000000001', ip: '10.99.0.2', mac: '02:00:00:99:00:02', bridge: 'hcbrfwda', subnet: '10.99.0.0/24' },
      { key: 'a2', vm: 'a200000000000002', ip: '10.99.0.3', mac: '02:00:00:99:00:03', bridge: 'hcbrfwda', subnet: '10.99.0.0/24' },
      { key: 'b', vm: 'b000000000000003', ip: '10.98.0.2', mac: '02:00:00:98:00:02', bridge: 'hcbrfwdb', subnet: '10.98.0.0/24' },
    ] as const;
    for (const l of layout) {
      const gateway = l.subnet.replace(/0\/24$/, '1');
      await net.ensureBridge(l.bridge, `${gateway}/24`);
      // Only the first bridge has a metadata listener: the other shows a bridge without one.
      await nat.ensureBridge({ subnet: l.subnet, bridge: l.bridge, ...(l.bridge === 'hcbrfwda' ? { metadataPort: METADATA_PORT } : {}) });
      const ns = await createNetns('hc-guest');
      namespaces.push(ns);
      const tap = `hcv${l.key}`;
      // The guest's "NIC": a veth whose host end is enslaved like a TAP would be.
      await host.run('ip', ['link', 'add', tap, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.name]);
      await host.run('ip', ['link', 'set', tap, 'master', l.bridge, 'up']);
      await ns.run('ip', ['link', 'set', 'eth0', 'address', l.mac]);
      await ns.run('ip', ['addr', 'add', `${l.ip}/24`, 'dev', 'eth0']);
      await ns.run('ip', ['link', 'set', 'eth0', 'up']);
      await ns.run('ip', ['route', 'add', 'default', 'via', gateway]);
      guests[l.key] = { vm: l.vm, ns, tap, mac: l.mac, ip: l.ip, bridge: l.bridge, subnet: l.subnet };
      await links.addVm({ vmId: l.vm, tap, mac: l.mac, ip: l.ip, neighbours: 'isolated' });
    }
    await nat.addVm(vmNat(guests.a1, { forwards: [{ hostPort: 18080, guestPort: 7000, protocol: 'tcp' }], hostPorts: [{ port: 3128, protocol: 'tcp' }] }));
    await nat.addVm(vmNat(guests.a2));
    await nat.addVm(vmNat(guests.b, { forwards: [{ hostPort: 18081, guestPort: 7000, protocol: 'tcp' }] }));

    // The host's uplink to "another machine".
    await host.run('ip', ['link', 'add', 'hcufwd', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outside.name]);
    await host.run('ip', ['addr', 'add', '10.77.0.1/24', 'dev', 'hcufwd']);
    await host.run('ip', ['link', 'set', 'hcufwd', 'up']);
    await outside.run('ip', ['addr', 'add', '10.77.0.2/24', 'dev', 'eth0']);
    await outside.run('ip', ['link', 'set', 'eth0', 'up']);

    // Echo servers that prefix the peer address, so masquerading is observable.
    const echo = (port: number, addr: string): string => `require('net').createServer(s=>s.on('data',d=>s.end(s.remoteAddress+' '+d))).listen(${port},'${addr}',()=>console.log('ready'))`;
    for (const g of Object.values(guests)) processes.push(await spawnNodeInNetns(g.ns.name, echo(7000, g.ip)));
    processes.push(await spawnNodeInNetns(outside.name, echo(9000, '10.77.0.2')));
    // Host services: loopback only, every address, DNS, and one a guest is allowed to reach.
    processes.push(await spawnNodeInNetns(host.name, "require('net').createServer(s=>s.end('secret')).listen(9999,'127.0.0.1',()=>console.log('ready'))"));
    for (const port of [9998, 53, 3128]) processes.push(await spawnNodeInNetns(host.name, echo(port, '0.0.0.0')));
    processes.push(await spawnNodeInNetns(host.name, echo(METADATA_PORT, '10.99.0.1')));
  });

  after(async () => {
    for (const p of processes) await p.stop().catch(() => undefined);
    for (const ns of namespaces.reverse()) await ns.cleanup();
  });

  test('host -> bridge address:hostPort reaches the guest (output chain DNAT)', async () => {
    assert.equal(await clientSays(host.name, '10.99.0.1', 18080, 'ping'), '10.99.0.1 ping');
    assert.equal(await clientSays(host.name, '10.98.0.1', 18081, 'ping'), '10.98.0.1 ping');
  });

  test('host -> 127.0.0.1:hostPort reaches the guests of both bridges (route_localnet + masquerade)', async () => {
    // The guest sees the gateway, not 127.0.0.1, as the peer: it could not reply to loopback.
    assert.equal(await clientSays(host.name, '127.0.0.1', 18080, 'local'), '10.99.0.1 local');
    assert.equal(await clientSays(host.name, '127.0.0.1', 18081, 'local'), '10.98.0.1 local');
  });

  test('another machine -> host uplink:hostPort reaches the guest (prerouting DNAT)', async () => {
    assert.equal(await clientSays(outside.name, '10.77.0.1', 18080, 'remote'), '10.77.0.2 remote');
    assert.equal(await clientSays(outside.name, '10.77.0.1', 18081, 'remote'), '10.77.0.2 remote');
  });

  test('guests of both bridges reach outside, masqueraded behind the host', async () => {
    assert.equal(await clientSays(guests.a1.ns.name, '10.77.0.2', 9000, 'out'), '10.77.0.1 out');
    assert.equal(await clientSays(guests.b.ns.name, '10.77.0.2', 9000, 'out'), '10.77.0.1 out');
  });

  test('a hostile guest on either bridge cannot reach the host loopback', async () => {
    for (const g of [guests.a1, guests.b]) {
      // Its own loopback gone, 127.0.0.0/8 routed to the host, and replies from 127.0.0.1
      // accepted on eth0 (a stock kernel drops them as martians).
      await g.ns.run('ip', ['addr', 'flush', 'dev', 'lo']);
      await g.ns.run('sysctl', ['-w', 'net.ipv4.conf.eth0.route_localnet=1']);
      await g.ns.run('ip', ['route', 'add', '127.0.0.0/8', 'via', g.subnet.replace(/0\/24$/, '1'), 'dev', 'eth0']);
      try {
        await assert.rejects(clientSays(g.ns.name, '127.0.0.1', 9999, 'x'), refused, `guest ${g.ip}`);
      } finally {
        await g.ns.run('ip', ['route', 'del', '127.0.0.0/8']);
        await g.ns.run('ip', ['addr', 'add', '127.0.0.1/8', 'dev', 'lo']);
      }
    }
  });

  test('on the host, guests reach DNS on the gateway and the host ports their spec allows, nothing else', async () => {
    assert.equal(await clientSays(guests.a1.ns.name, '10.99.0.1', 53, 'dns'), '10.99.0.2 dns');
    assert.equal(await clientSays(guests.a1.ns.name, '10.99.0.1', 3128, 'proxy'), '10.99.0.2 proxy');
    await assert.rejects(clientSays(guests.a2.ns.name, '10.99.0.1', 3128, 'proxy'), refused, 'a2 has no host_ports');
    await assert.rejects(clientSays(guests.a1.ns.name, '10.99.0.1', 9998, 'x'), refused, 'a service on every host address');
    await assert.rejects(clientSays(guests.a1.ns.name, '10.77.0.1', 9998, 'x'), refused, 'the same service on the uplink address');
    await assert.rejects(clientSays(guests.b.ns.name, '10.98.0.1', 9998, 'x'), refused, 'the same service from the other bridge');
  });

  test('169.254.169.254:80 from a guest reaches its bridge\'s metadata listener with the guest\'s own address; the listener\'s port is reached no other way', async () => {
    assert.equal(await clientSays(guests.a1.ns.name, '169.254.169.254', 80, 'md'), '10.99.0.2 md');
    assert.equal(await clientSays(guests.a2.ns.name, '169.254.169.254', 80, 'md'), '10.99.0.3 md');
    await assert.rejects(clientSays(guests.b.ns.name, '169.254.169.254', 80, 'md'), refused, 'a bridge without a listener');
    await assert.rejects(clientSays(guests.a1.ns.name, '10.99.0.1', METADATA_PORT, 'x'), refused, 'the listener\'s own address and port, from a guest');
    await assert.rejects(clientSays(host.name, '10.99.0.1', METADATA_PORT, 'x'), refused, 'from the host itself');
    await outside.run('ip', ['route', 'add', '10.99.0.0/24', 'via', '10.77.0.1']);
    try {
      await assert.rejects(clientSays(outside.name, '10.99.0.1', METADATA_PORT, 'x'), refused, 'from another machine through the uplink');
    } finally {
      await outside.run('ip', ['route', 'del', '10.99.0.0/24']);
    }
  });

  test('guests are isolated from one another, on the same bridge and across bridges, unless both are open', async () => {
    await assert.rejects(clientSays(guests.a1.ns.name, guests.a2.ip, 7000, 'x'), refused, 'same bridge');
    await assert.rejects(clientSays(guests.a1.ns.name, guests.b.ip, 7000, 'x'), refused, 'other bridge');
    // A published port is public: other guests may use it like anyone else.
    assert.equal(await clientSays(guests.b.ns.name, '10.98.0.1', 18080, 'pub'), '10.99.0.1 pub', 'masqueraded into the other bridge');
    for (const g of [guests.a1, guests.a2]) {
      await links.addVm({ vmId: g.vm, tap: g.tap, mac: g.mac, ip: g.ip, neighbours: 'open' });
      await nat.addVm(vmNat(g, { open: true, ...(g === guests.a1 ? { forwards: [{ hostPort: 18080, guestPort: 7000, protocol: 'tcp' as const }] } : {}) }));
    }
    assert.equal(await clientSays(guests.a1.ns.name, guests.a2.ip, 7000, 'hi'), '10.99.0.2 hi');
    assert.equal(await clientSays(guests.a2.ns.name, guests.a1.ip, 7000, 'hi'), '10.99.0.3 hi');
    await assert.rejects(clientSays(guests.a1.ns.name, guests.b.ip, 7000, 'x'), refused, 'open is per bridge');
    await links.addVm({ vmId: guests.a2.vm, tap: guests.a2.tap, mac: guests.a2.mac, ip: guests.a2.ip, neighbours: 'isolated' });
    await nat.addVm(vmNat(guests.a2));
    await assert.rejects(clientSays(guests.a1.ns.name, guests.a2.ip, 7000, 'x'), refused, 'an open guest does not reach an isolated one');
  });

  test('a guest that takes another address, a loopback source or another MAC sends nothing', async () => {
    const g = guests.b;
    // A UDP receiver outside that reports every datagram: a spoofed one needs no answer to get through.
    const receiver = await spawnNodeInNetns(outside.name, "const u=require('dgram').createSocket('udp4');u.on('message',(m,r)=>console.log('got '+m+' from '+r.address));u.bind(9001,'10.77.0.2',()=>console.log('ready'))");
    processes.push(receiver);
    let heard = '';
    receiver.child.stdout!.on('data', (c: Buffer) => (heard += c.toString()));
    const send = (source: string, message: string): Promise<unknown> => g.ns.run(process.execPath, ['-e',
      `const u=require('dgram').createSocket('udp4');u.bind(0,'${source}',()=>u.send('${message}',9001,'10.77.0.2',()=>setTimeout(()=>u.close(),200)))`]);
    // Another guest's address, and a loopback source (which the guest's kernel sends out of eth0
    // once route_localnet is on there; the host would route it, since its bridge has route_localnet).
    await g.ns.run('ip', ['addr', 'add', '10.98.0.9/24', 'dev', 'eth0']);
    await g.ns.run('ip', ['addr', 'add', '127.0.0.5/32', 'dev', 'eth0']);
    await g.ns.run('sysctl', ['-w', 'net.ipv4.conf.eth0.route_localnet=1']);
    try {
      await send('10.98.0.9', 'stolen-address');
      await send('127.0.0.5', 'loopback-source');
      await send(g.ip, 'own-address');
      await new Promise((resolve) => setTimeout(resolve, 1000));
    } finally {
      await g.ns.run('ip', ['addr', 'del', '10.98.0.9/24', 'dev', 'eth0']);
      await g.ns.run('ip', ['addr', 'del', '127.0.0.5/32', 'dev', 'eth0']);
    }
    assert.match(heard, /got own-address from 10\.77\.0\.1/, 'the path works');
    assert.doesNotMatch(heard, /stolen-address|loopback-source/);

    await g.ns.run('ip', ['link', 'set', 'eth0', 'address', '02:00:00:98:00:99']);
    try {
      await send(g.ip, 'stolen-mac');
      await new Promise((resolve) => setTimeout(resolve, 1000));
    } finally {
      await g.ns.run('ip', ['link', 'set', 'eth0', 'address', g.mac]);
    }
    assert.doesNotMatch(heard, /stolen-mac/);
  });

  test('after removeForVm the forward is gone', async () => {
    assert.equal(await nat.removeForVm(guests.a1.vm, guests.a1.ip), 2);
    await assert.rejects(clientSays(host.name, '10.99.0.1', 18080, 'gone'));
  });
});
