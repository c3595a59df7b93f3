import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allocateAddress, contains, gatewayCidrOf, gatewayOf, intToIp, ipToInt, macForVm, overlaps, parseCidr, tapNameForVm } from './ipam.js';

test('parseCidr accepts subnets and explains bad input', () => {
  assert.deepEqual(parseCidr('10.88.0.0/16'), { network: ipToInt('10.88.0.0'), prefix: 16, size: 65536, text: '10.88.0.0/16' });
  assert.equal(parseCidr('0.0.0.0/0').size, 2 ** 32);
  assert.throws(() => parseCidr('10.88.0.0'), /"10.88.0.0" is not an IPv4 CIDR/);
  assert.throws(() => parseCidr('10.88.0.0/33'), /prefix length 33/);
  assert.throws(() => parseCidr('10.256.0.0/16'), /"10.256.0.0" is not an IPv4 address/);
  assert.throws(() => parseCidr('10.88.0.1/16'), /host bits set; the subnet is 10.88.0.0\/16/);
  assert.equal(intToIp(ipToInt('255.254.1.0')), '255.254.1.0');
});

test('gateway is the first host; tiny subnets are refused', () => {
  assert.equal(gatewayOf('10.88.0.0/16'), '10.88.0.1');
  assert.equal(gatewayCidrOf('192.168.7.0/24'), '192.168.7.1/24');
  assert.throws(() => gatewayOf('10.0.0.0/31'), /too small/);
});

test('allocateAddress hands out the lowest free host, never network/gateway/broadcast', () => {
  assert.equal(allocateAddress('10.88.0.0/16', new Set()), '10.88.0.2');
  assert.equal(allocateAddress('10.88.0.0/16', new Set(['10.88.0.2', '10.88.0.3'])), '10.88.0.4');
  assert.equal(allocateAddress('10.0.0.0/30', new Set()), '10.0.0.2');
  assert.throws(() => allocateAddress('10.0.0.0/30', new Set(['10.0.0.2'])), /10.0.0.0\/30 has no free address/);
  // Crosses an octet boundary without skipping or reusing.
  const used = new Set<string>();
  for (let i = 2; i <= 255; i++) used.add(`10.88.0.${i}`);
  assert.equal(allocateAddress('10.88.0.0/16', used), '10.88.1.0');
});

test('allocateAddress honours a static request and names the bad value', () => {
  assert.equal(allocateAddress('10.88.0.0/16', new Set(), '10.88.3.4'), '10.88.3.4');
  assert.throws(() => allocateAddress('10.88.0.0/16', new Set(), '10.89.0.5'), /10.89.0.5 is outside the subnet 10.88.0.0\/16/);
  assert.throws(() => allocateAddress('10.88.0.0/16', new Set(['10.88.0.9']), '10.88.0.9'), /10.88.0.9 is already leased/);
  assert.throws(() => allocateAddress('10.88.0.0/16', new Set(), '10.88.0.1'), /10.88.0.1 is reserved: it is the gateway/);
  assert.throws(() => allocateAddress('10.88.0.0/16', new Set(), '10.88.0.0'), /10.88.0.0 is reserved: it is the network/);
  assert.throws(() => allocateAddress('10.88.0.0/16', new Set(), '10.88.255.255'), /10.88.255.255 is reserved: it is the broadcast/);
  assert.throws(() => allocateAddress('10.88.0.0/16', new Set(), 'nope'), /"nope" is not an IPv4 address/);
});

test('overlaps and contains', () => {
  assert.equal(overlaps('10.88.0.0/16', '10.88.5.0/24'), true);
  assert.equal(overlaps('10.88.5.0/24', '10.88.0.0/16'), true);
  assert.equal(overlaps('10.88.0.0/16', '10.89.0.0/16'), false);
  assert.equal(overlaps('10.0.0.0/8', '10.255.255.255/32'), true);
  assert.equal(overlaps('0.0.0.0/0', '192.168.1.0/24'), true);
  assert.equal(contains('10.88.0.0/16', '10.88.200.1'), true);
  assert.equal(contains('10.88.0.0/16', '10.87.255.255'), false);
});

test('macForVm is stable, unicast and locally administered', () => {
  const mac = macForVm('0123456789abcdef');
  assert.match(mac, /^02(:[0-9a-f]{2}){5}$/);
  assert.equal(macForVm('0123456789abcdef'), mac);
  assert.notEqual(macForVm('0123456789abcdee'), mac);
});

test('tapNameForVm fits IFNAMSIZ and is derived from the id', () => {
  assert.equal(tapNameForVm('0123456789abcdef'), 'hc0123456789ab');
  assert.equal(tapNameForVm('0123456789ABCDEF'), 'hc0123456789ab');
  const hashed = tapNameForVm('my-vm');
  assert.match(hashed, /^hc[0-9a-f]{12}$/);
  assert.ok(hashed.length <= 15);
  assert.equal(tapNameForVm('my-vm'), hashed);
});
