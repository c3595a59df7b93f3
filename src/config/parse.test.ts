import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseHac, specFromImageReference } from './index.js';

/** A VM folder with a disk, kernel and initrd, and a working directory with other files. */
const dir = mkdtempSync(join(tmpdir(), 'hac-parse-'));
const vmDir = join(dir, 'vm');
const cwd = join(dir, 'cwd');
mkdirSync(vmDir);
mkdirSync(cwd);
for (const f of ['root.ext4', 'vmlinux', 'initrd.img']) writeFileSync(join(vmDir, f), '');
for (const f of ['other.ext4', 'other-vmlinux', 'other-initrd']) writeFileSync(join(cwd, f), '');
const file = join(vmDir, 'hac.toml');
const opts = { file, hostCpus: 4, cwd };

const minimal = `[spacecore]\nname = "demo"\n[hardware]\ndrive = "root.ext4"\n`;

test('parseHac: a minimal file gets every default', () => {
  assert.deepEqual(parseHac(minimal, opts), {
    name: 'demo',
    description: '',
    cores: 1,
    memoryMib: 256,
    diskSizeMib: 4096,
    kernelArgs: '',
    drive: join(vmDir, 'root.ext4'),
    driveReadOnly: false,
    provider: 'auto',
    hypervisor: { qemu: { accel: 'auto' }, firecracker: {}, cloudHypervisor: {} },
    network: { mode: 'nat', subnet: '10.88.0.0/16', dns: [], ports: [] },
  });
});

test('parseHac: every key maps to VmSpec, relative paths resolve against the file folder', () => {
  const text = `
[spacecore]
name = "web-1.test_x"
description = "a # in a string"   # a comment

[hardware]
cores = 4
memory = 1024
disk_size = 20480
kernel = "vmlinux"
initrd = "./initrd.img"
kernel_args = "quiet loglevel=3"
drive = "${join(vmDir, 'root.ext4')}"
drive_readonly = true
ref = "docker.io/library/alpine:latest"
interface = "eth0"

[hypervisor]
provider = "cloud-hypervisor"

[hypervisor.qemu]
binary = "qemu-system-x86_64"
accel = "tcg"

[hypervisor.firecracker]
binary = "bin/firecracker"

[hypervisor.cloud_hypervisor]
binary = "/opt/ch/cloud-hypervisor"
`;
  assert.deepEqual(parseHac(text, opts), {
    name: 'web-1.test_x',
    description: 'a # in a string',
    cores: 4,
    memoryMib: 1024,
    diskSizeMib: 20480,
    kernel: join(vmDir, 'vmlinux'),
    initrd: join(vmDir, 'initrd.img'),
    kernelArgs: 'quiet loglevel=3',
    drive: join(vmDir, 'root.ext4'),
    driveReadOnly: true,
    image: 'docker.io/library/alpine:latest',
    hostInterface: 'eth0',
    provider: 'cloud-hypervisor',
    hypervisor: {
      qemu: { accel: 'tcg', binary: 'qemu-system-x86_64' },
      firecracker: { binary: join(vmDir, 'bin/firecracker') },
      cloudHypervisor: { binary: '/opt/ch/cloud-hypervisor' },
    },
    network: { mode: 'nat', subnet: '10.88.0.0/16', dns: [], ports: [] },
  });
});

test('parseHac: inline tables, dotted keys and CRLF line ends are fine', () => {
  const text = 'spacecore = { name = "x" }\r\nhardware.drive = "root.ext4"\r\nhardware.cores = 2\r\nhypervisor = { qemu = { accel = "kvm" } }\r\n';
  const spec = parseHac(text, opts);
  assert.equal(spec.name, 'x');
  assert.equal(spec.cores, 2);
  assert.equal(spec.hypervisor.qemu.accel, 'kvm');
});

test('parseHac: a relative file name resolves against cwd', () => {
  const spec = parseHac(minimal, { file: 'vm/hac.toml', hostCpus: 1, cwd: dir });
  assert.equal(spec.drive, join(vmDir, 'root.ext4'));
});

test('parseHac: overrides replace file values; their paths resolve against cwd', () => {
  const text = `${minimal}cores = 1\nkernel = "vmlinux"\n[hypervisor]\nprovider = "qemu"\n`;
  const spec = parseHac(text, {
    ...opts,
    overrides: {
      name: 'other',
      cores: 3,
      memoryMib: 512,
      provider: 'firecracker',
      kernel: 'other-vmlinux',
      initrd: 'other-initrd',
      drive: 'other.ext4',
      kernelArgs: 'console=ttyS0',
      accel: 'kvm',
    },
  });
  assert.equal(spec.name, 'other');
  assert.equal(spec.cores, 3);
  assert.equal(spec.memoryMib, 512);
  assert.equal(spec.provider, 'firecracker');
  assert.equal(spec.kernel, join(cwd, 'other-vmlinux'));
  assert.equal(spec.initrd, join(cwd, 'other-initrd'));
  assert.equal(spec.drive, join(cwd, 'other.ext4'));
  assert.equal(spec.kernelArgs, 'console=ttyS0');
  assert.equal(spec.hypervisor.qemu.accel, 'kvm');
});

test('parseHac: overrides can supply required keys the file leaves out', () => {
  const spec = parseHac('', { ...opts, overrides: { name: 'flags-only', drive: 'other.ext4' } });
  assert.equal(spec.name, 'flags-only');
  assert.equal(spec.drive, join(cwd, 'other.ext4'));
});

test('parseHac: an override hides the invalid file value it replaces', () => {
  const spec = parseHac(`${minimal}cores = 0\n`, { ...opts, overrides: { cores: 2 } });
  assert.equal(spec.cores, 2);
});

test('parseHac: undefined overrides change nothing', () => {
  assert.equal(parseHac(minimal, { ...opts, overrides: { cores: undefined } }).cores, 1);
});

test('parseHac: fileExists replaces the filesystem check', () => {
  const asked: string[] = [];
  const spec = parseHac(`[spacecore]\nname = "x"\n[hardware]\ndrive = "/nowhere/disk.ext4"\nkernel = "k"\n`, {
    file: '/virtual/hac.toml',
    hostCpus: 1,
    fileExists: (p) => {
      asked.push(p);
      return true;
    },
  });
  assert.equal(spec.drive, '/nowhere/disk.ext4');
  assert.equal(spec.kernel, '/virtual/k');
  assert.deepEqual(asked.sort(), ['/nowhere/disk.ext4', '/virtual/k']);
});

test('parseHac: cores up to the host CPU count and the memory bounds are accepted', () => {
  assert.equal(parseHac(`${minimal}cores = 4\nmemory = 64\n`, opts).cores, 4);
  assert.equal(parseHac(`${minimal}memory = 1048576\n`, opts).memoryMib, 1048576);
});

test('parseHac: disk_size is whole MiB within its bounds', () => {
  assert.equal(parseHac(`${minimal}disk_size = 64\n`, opts).diskSizeMib, 64);
  assert.throws(() => parseHac(`${minimal}disk_size = 63\n`, opts), /hardware\.disk_size = 63: must be an integer from 64 to 16777216 \(MiB\)/);
  assert.throws(() => parseHac(`${minimal}disk_size = "4GiB"\n`, opts), /hardware\.disk_size = "4GiB": must be an integer from 64 to 16777216 \(MiB\)/);
});

const refOnly = `[spacecore]\nname = "app"\n[hardware]\nref = "docker.io/library/alpine:3.20"\n`;
const defaults = { description: '', cores: 1, memoryMib: 256, diskSizeMib: 4096, kernelArgs: '', driveReadOnly: false, provider: 'auto', hypervisor: { qemu: { accel: 'auto' }, firecracker: {}, cloudHypervisor: {} }, network: { mode: 'nat', subnet: '10.88.0.0/16', dns: [], ports: [] } };

test('parseHac: ref without drive is valid; no [workload] means no workload settings', () => {
  assert.deepEqual(parseHac(refOnly, opts), { name: 'app', ...defaults, image: 'docker.io/library/alpine:3.20' });
});

test('parseHac: drive and ref together keep both', () => {
  const spec = parseHac(`${minimal}ref = "alpine"\n`, opts);
  assert.equal(spec.drive, join(vmDir, 'root.ext4'));
  assert.equal(spec.image, 'alpine');
  assert.equal(spec.workload, undefined);
});

test('parseHac: every [workload] key maps to VmSpec.workload', () => {
  const text = `${refOnly}memory = 512
[workload]
entrypoint = ["/bin/sh", "-c"]
command = ["echo \\"$GREETING\\"", ""]
env = ["GREETING=hello world", "EMPTY=", "_X1=a=b"]
workdir = "/srv/app"
user = "1000:100"
tty = true
pids_limit = 64
memory_limit = 512
`;
  assert.deepEqual(parseHac(text, opts).workload, {
    entrypoint: ['/bin/sh', '-c'],
    cmd: ['echo "$GREETING"', ''],
    env: ['GREETING=hello world', 'EMPTY=', '_X1=a=b'],
    workdir: '/srv/app',
    user: '1000:100',
    tty: true,
    pidsLimit: 64,
    memoryLimitMib: 512,
  });
});

test('parseHac: an empty [workload] gets tty = false; empty arrays clear, a bare uid is fine', () => {
  assert.deepEqual(parseHac(`${refOnly}[workload]\n`, opts).workload, { tty: false });
  assert.deepEqual(parseHac(`${refOnly}[workload]\nentrypoint = []\ncommand = []\nuser = "0"\n`, opts).workload, { entrypoint: [], cmd: [], user: '0', tty: false });
  assert.deepEqual(parseHac(`workload = { tty = true, memory_limit = 4 }\n${refOnly}`, opts).workload, { tty: true, memoryLimitMib: 4 });
});

test('parseHac: memory_limit may equal hardware.memory, also its default and an overridden value', () => {
  assert.equal(parseHac(`${refOnly}[workload]\nmemory_limit = 256\n`, opts).workload?.memoryLimitMib, 256);
  const spec = parseHac(`${refOnly}memory = 128\n[workload]\nmemory_limit = 1024\n`, { ...opts, overrides: { memoryMib: 1024 } });
  assert.equal(spec.workload?.memoryLimitMib, 1024);
});

test('parseHac: overrides of the workload keys replace file values; arrays are replaced, not merged', () => {
  const text = `${refOnly}[workload]\ncommand = ["a", "b"]\nenv = ["A=1", "B=2"]\nworkdir = "/file"\nuser = "1"\npids_limit = 10\n`;
  const command = ['ls', '-l'];
  const spec = parseHac(text, {
    ...opts,
    overrides: { image: 'quay.io/x/y:1', command, env: ['C=3'], workdir: '/flag', user: '2:2', tty: true },
  });
  assert.equal(spec.image, 'quay.io/x/y:1');
  assert.deepEqual(spec.workload, { cmd: ['ls', '-l'], env: ['C=3'], workdir: '/flag', user: '2:2', tty: true, pidsLimit: 10 });
  command.push('changed');
  assert.deepEqual(spec.workload?.cmd, ['ls', '-l'], 'the spec does not share the caller\'s array');
  // An empty override array clears the file's.
  assert.deepEqual(parseHac(text, { ...opts, overrides: { env: [] } }).workload?.env, []);
});

test('parseHac: overrides create [workload] and supply ref', () => {
  const spec = parseHac('[spacecore]\nname = "x"\n', { ...opts, overrides: { image: 'alpine', env: ['A=1'], tty: false } });
  assert.equal(spec.image, 'alpine');
  assert.equal(spec.drive, undefined);
  assert.deepEqual(spec.workload, { env: ['A=1'], tty: false });
  assert.equal(parseHac(minimal, { ...opts, overrides: { image: 'alpine' } }).image, 'alpine');
});

test('specFromImageReference: defaults, the ref and a generated name', () => {
  const spec = specFromImageReference('alpine:3.20', { hostCpus: 2 });
  const { name, ...rest } = spec;
  assert.match(name, /^run-[0-9a-f]{6}$/);
  assert.deepEqual(rest, { ...defaults, image: 'alpine:3.20' });
  assert.notEqual(specFromImageReference('alpine', { hostCpus: 2 }).name, name);
});

test('specFromImageReference: name and overrides, paths against cwd', () => {
  const spec = specFromImageReference('alpine', {
    hostCpus: 4,
    name: 'web',
    cwd,
    overrides: { cores: 2, memoryMib: 512, command: ['sh', '-c', 'echo hi'], env: ['A=1'], workdir: '/tmp', user: '0:0', tty: true, kernel: 'other-vmlinux' },
  });
  assert.equal(spec.name, 'web');
  assert.equal(spec.cores, 2);
  assert.equal(spec.memoryMib, 512);
  assert.equal(spec.image, 'alpine');
  assert.equal(spec.kernel, join(cwd, 'other-vmlinux'));
  assert.equal(spec.drive, undefined);
  assert.deepEqual(spec.workload, { cmd: ['sh', '-c', 'echo hi'], env: ['A=1'], workdir: '/tmp', user: '0:0', tty: true });
});

test('specFromImageReference: overrides.name and overrides.image win; a drive boots with the image attached', () => {
  const spec = specFromImageReference('alpine', { hostCpus: 1, name: 'first', cwd, overrides: { name: 'second', image: 'busybox', drive: 'other.ext4' } });
  assert.equal(spec.name, 'second');
  assert.equal(spec.image, 'busybox');
  assert.equal(spec.drive, join(cwd, 'other.ext4'));
  assert.equal(spec.workload, undefined);
});
