/**
 * The API judges a spec by the hac.toml schema itself: what a file may not say, a spec may not
 * either. These are the gaps the old, separate API schema had.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ErrorCodes, HypercoreError } from '../core/errors.js';
import { runCommand } from '../system/command.js';
import { validateVmSpec } from './spec-validation.js';

const dir = mkdtempSync(join(tmpdir(), 'hc-specval-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const drive = join(dir, 'root.ext4');
writeFileSync(drive, '');
const base = { name: 'v', drive };

function problems(spec: object): [string, string][] {
  try {
    validateVmSpec(spec, 2);
  } catch (err) {
    assert.ok(err instanceof HypercoreError && err.code === ErrorCodes.invalidArgument, String(err));
    return err.details.map((d) => [d.path, d.message]);
  }
  return [];
}

function rejects(spec: object, path: string, message: RegExp): void {
  const found = problems(spec);
  assert.ok(found.some(([p, m]) => p === path && message.test(m)), `expected ${path} ~ ${message}; got ${JSON.stringify(found)}`);
}

test('a valid spec maps to the same VmSpec a hac.toml would give', () => {
  const spec = validateVmSpec({ ...base, memoryMib: 512, image: 'alpine', workload: { cmd: ['sh'], user: '1000:1000', memoryLimitMib: 64 }, network: { mode: 'nat', ports: ['8080:80'] }, provider: 'qemu', hypervisor: { qemu: { accel: 'tcg' } } }, 2);
  assert.equal(spec.memoryMib, 512);
  assert.deepEqual(spec.workload, { tty: false, cmd: ['sh'], user: '1000:1000', memoryLimitMib: 64 });
  assert.deepEqual(spec.network, { mode: 'nat', subnet: '10.88.0.0/16', dns: [], ports: ['8080:80'] });
  assert.equal(spec.provider, 'qemu');
  assert.deepEqual(spec.hypervisor.qemu, { accel: 'tcg' });
});

test('addresses must be real IPv4 addresses (999.1.1.1 is not)', () => {
  rejects({ ...base, network: { mode: 'nat', ip: '999.1.1.1' } }, 'spec.network.ip', /IPv4 address/);
  rejects({ ...base, network: { mode: 'nat', dns: ['1.1.1.1', '300.0.0.1'] } }, 'spec.network.dns[1]', /IPv4 address/);
});

test('user ids must be in range', () => {
  rejects({ ...base, image: 'a', workload: { user: '99999999999' } }, 'spec.workload.user', /uid/);
  rejects({ ...base, image: 'a', workload: { user: '4294967295' } }, 'spec.workload.user', /uid/);
});

test('the workload memory limit may not exceed the VM memory, named in the spec’s words', () => {
  rejects({ ...base, memoryMib: 128, image: 'a', workload: { memoryLimitMib: 256 } }, 'spec.workload.memoryLimitMib', /to 128 \(MiB; memoryMib\)/);
});

test('port forwards follow the file rules (syntax, and no ports in bridge mode)', () => {
  rejects({ ...base, network: { mode: 'nat', ports: ['80'] } }, 'spec.network.ports[0]', /host_port:guest_port/);
  rejects({ ...base, network: { mode: 'bridge', bridge: 'br0', ip: '10.0.0.5', ports: ['8080:80'] } }, 'spec.network.ports', /mode = "nat"/);
});

test('multicast, broadcast and all-zero MACs are refused', () => {
  for (const mac of ['01:00:5e:00:00:01', 'ff:ff:ff:ff:ff:ff', '00:00:00:00:00:00']) rejects({ ...base, network: { mode: 'nat', mac } }, 'spec.network.mac', /unicast/);
  assert.deepEqual(problems({ ...base, network: { mode: 'nat', mac: '02:00:00:00:00:01' } }), []);
});

test('subnets in loopback, link-local, multicast or too small are refused', () => {
  rejects({ ...base, network: { mode: 'nat', subnet: '127.0.0.0/24' } }, 'spec.network.subnet', /127\.0\.0\.0\/8/);
  rejects({ ...base, network: { mode: 'nat', subnet: '0.0.0.0/0' } }, 'spec.network.subnet', /overlap/);
  rejects({ ...base, network: { mode: 'nat', subnet: '169.254.0.0/24' } }, 'spec.network.subnet', /link-local/);
  rejects({ ...base, network: { mode: 'nat', subnet: '224.1.0.0/16' } }, 'spec.network.subnet', /multicast/);
  rejects({ ...base, network: { mode: 'nat', subnet: '10.1.2.0/31' } }, 'spec.network.subnet', /\/30 or larger/);
});

test('kernel and initrd must be regular files; a drive a regular file or a block device', async () => {
  rejects({ ...base, kernel: '/dev/zero' }, 'spec.kernel', /not a regular file/);
  rejects({ ...base, initrd: dir }, 'spec.initrd', /directory/);
  const fifo = join(dir, 'fifo');
  await runCommand('mkfifo', [fifo]);
  rejects({ ...base, drive: fifo }, 'spec.drive', /neither a regular file nor a block device/);
  rejects({ ...base, drive: '/dev/null' }, 'spec.drive', /neither a regular file nor a block device/);
  const block = readdirSync('/dev').map((n) => join('/dev', n)).find((p) => statSync(p, { throwIfNoEntry: false })?.isBlockDevice());
  if (block) assert.deepEqual(problems({ ...base, drive: block }), [], `${block} is a block device`);
});

test('unknown fields are refused wherever they are', () => {
  rejects({ ...base, colour: 'red' }, 'spec.colour', /unknown field/);
  rejects({ ...base, image: 'a', workload: { command: ['x'] } }, 'spec.workload.command', /unknown field/);
  rejects({ ...base, hypervisor: { qemu: { accel: 'tcg', turbo: true } } }, 'spec.hypervisor.qemu.turbo', /unknown field/);
});

test('a pod spec sent in a request is refused naming containerd: answers carry it, only hypercored makes pod VMs', () => {
  const pod = { sandboxId: 's1', namespace: 'k8s.io', owner: '/run/containerd/containerd.sock', events: '/run/containerd/containerd.sock.ttrpc', slots: 8 };
  rejects({ ...base, pod }, 'spec.pod', /made through containerd/);
  // What a client that re-sends an answer's spec without the pod gets: no problem for an absent pod.
  assert.deepEqual(problems({ ...base, pod: null }), []);
});

test('relative paths are refused: the API has no folder to resolve them against', () => {
  rejects({ ...base, drive: 'root.ext4' }, 'spec.drive', /absolute path/);
  rejects({ ...base, hypervisor: { qemu: { binary: 'bin/qemu' } } }, 'spec.hypervisor.qemu.binary', /absolute path/);
});

test('the schema shared between requests keeps each host\'s CPU count and no state from one spec to the next', () => {
  const tooMany = (hostCpus: number): boolean => {
    try {
      validateVmSpec({ ...base, cores: 3 }, hostCpus);
      return false;
    } catch (err) {
      return err instanceof HypercoreError && err.details.some((d) => d.path === 'spec.cores');
    }
  };
  assert.deepEqual([tooMany(2), tooMany(4), tooMany(2)], [true, false, true]);
  const first = validateVmSpec({ ...base, network: { mode: 'nat' } }, 2);
  first.network!.dns.push('192.0.2.1');
  assert.deepEqual(validateVmSpec({ ...base, network: { mode: 'nat' } }, 2).network!.dns, []);
});
