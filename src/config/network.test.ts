import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigInvalidError } from '../core/errors.js';
import { parseHac } from './index.js';

const base = '[spacecore]\nname = "n"\n[hardware]\ndrive = "/d.img"\n';
const parse = (text: string) => parseHac(text, { file: 'hac.toml', hostCpus: 2, fileExists: () => true });

test('[network] nat (the default) maps to VmSpec.network with defaults; none leaves it out', () => {
  assert.deepEqual(parse(base).network, { mode: 'nat', subnet: '10.88.0.0/16', dns: [], ports: [] });
  assert.equal(parse(`${base}[network]\nmode = "none"\n`).network, undefined);
  const spec = parse(`${base}[network]\nmode = "nat"\nports = ["8080:80", "127.0.0.1:5353:53/udp"]\nmac = "02:AA:00:00:00:01"\n`);
  assert.deepEqual(spec.network, { mode: 'nat', subnet: '10.88.0.0/16', dns: [], ports: ['8080:80', '127.0.0.1:5353:53/udp'], mac: '02:aa:00:00:00:01' });
});

test('[network] bad values name the file position, key and value', () => {
  assert.throws(
    () => parse(`${base}[network]\nmode = "bridged"\nports = ["80"]\nsubnet = "10.0.0.0"\n`),
    (err: ConfigInvalidError) =>
      /hac\.toml:6:8: network\.mode = "bridged": must be one of "nat", "bridge", "none"/.test(err.message) &&
      /network\.ports\[0\] = "80": must be "\[host_ip:\]host_port:guest_port\[\/tcp\|udp\]"/.test(err.message) &&
      /network\.subnet = "10\.0\.0\.0": must be an IPv4 CIDR/.test(err.message),
  );
});

test('mode "bridge" needs bridge and ip, and allows no port forwards', () => {
  assert.throws(
    () => parse(`${base}[network]\nmode = "bridge"\nports = ["80:80"]\n`),
    (err: ConfigInvalidError) =>
      /missing required keys "network\.bridge" and "network\.ip"/.test(err.message) && /network\.ports = \["80:80"\]: port forwards need mode = "nat"/.test(err.message),
  );
  const spec = parse(`${base}[network]\nmode = "bridge"\nbridge = "br0"\nsubnet = "192.168.1.0/24"\nip = "192.168.1.50"\ngateway = "192.168.1.1"\n`);
  assert.deepEqual(spec.network, { mode: 'bridge', subnet: '192.168.1.0/24', dns: [], ports: [], ip: '192.168.1.50', bridge: 'br0', gateway: '192.168.1.1' });
});

test('[network] isolate and host_ports: defaults left out of the spec, set values mapped, bad ones named', () => {
  const spec = parse(`${base}[network]\nisolate = false\nhost_ports = ["3128", "5000/udp"]\n`);
  assert.deepEqual(spec.network, { mode: 'nat', subnet: '10.88.0.0/16', dns: [], ports: [], isolate: false, hostPorts: ['3128', '5000/udp'] });
  assert.throws(
    () => parse(`${base}[network]\nisolate = "no"\nhost_ports = ["http"]\n`),
    (err: Error) => /network\.isolate = "no": must be true or false/.test(err.message) && /network\.host_ports\[0\] = "http": must be "port\[\/tcp\|udp\]"/.test(err.message),
  );
  assert.throws(
    () => parse(`${base}[network]\nmode = "bridge"\nbridge = "br0"\nip = "192.168.1.5"\nsubnet = "192.168.1.0/24"\nhost_ports = ["80"]\n`),
    /host_ports need mode = "nat"/,
  );
});
