import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CONTAINER_ID, DEFAULT_CAPABILITIES, MASKED_PATHS, READONLY_PATHS, workloadConfig, type OciSpec } from './oci-config.js';

const base = { process: { args: ['nginx', '-g', 'daemon off;'] }, rootfs: '/run/hc/rootfs' };

function mount(spec: OciSpec, destination: string) {
  return spec.mounts.find((m) => m.destination === destination);
}

test('process: args, Docker-style env defaults, cwd, root user, no terminal (the agent owns stdio)', () => {
  const c = workloadConfig({ ...base, hostname: 'web-1' });
  assert.equal(c.ociVersion, '1.0.2');
  assert.deepEqual(c.process.args, ['nginx', '-g', 'daemon off;']);
  assert.deepEqual(c.process.env, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/root', 'HOSTNAME=web-1']);
  assert.equal(c.process.cwd, '/');
  assert.deepEqual(c.process.user, { uid: 0, gid: 0 });
  assert.equal(c.process.terminal, false);
  assert.equal(c.process.noNewPrivileges, false);
  assert.deepEqual(c.process.capabilities.bounding, [...DEFAULT_CAPABILITIES]);
  assert.deepEqual(c.process.capabilities.effective, c.process.capabilities.permitted);
  assert.deepEqual(c.process.rlimits, [{ type: 'RLIMIT_NOFILE', hard: 1048576, soft: 1048576 }]);
  assert.equal(c.hostname, 'web-1');

  const t = workloadConfig({ ...base, process: { args: ['sh'], env: ['PATH=/bin', 'FOO=a=b'], cwd: '/srv', user: '1000:1001', terminal: true } });
  assert.deepEqual(t.process.env, ['PATH=/bin', 'HOME=/', 'TERM=xterm', 'FOO=a=b']);
  assert.equal(t.process.cwd, '/srv');
  assert.deepEqual(t.process.user, { uid: 1000, gid: 1001 });
  assert.equal(t.process.terminal, false, 'a terminal is the agent\'s pty passed as stdio, never crun --tty');
  assert.equal(t.hostname, undefined);
});

test('root is the mounted rootfs, writable', () => {
  assert.deepEqual(workloadConfig(base).root, { path: '/run/hc/rootfs', readonly: false });
});

test('namespaces: pid, ipc, uts, mount, cgroup, but not network (the VM\'s network is shared)', () => {
  const types = workloadConfig(base).linux.namespaces.map((n) => n.type);
  assert.deepEqual(types, ['pid', 'ipc', 'uts', 'mount', 'cgroup']);
  assert.ok(!types.includes('network'));
  assert.equal(workloadConfig(base).linux.cgroupsPath, `/${CONTAINER_ID}`);
});

test('mounts: proc, /dev tmpfs, the guest\'s /dev/pts bound (no new devpts), shm, mqueue, sys ro, cgroup', () => {
  const c = workloadConfig(base);
  assert.deepEqual(c.mounts.map((m) => m.destination), ['/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys', '/sys/fs/cgroup']);
  const pts = mount(c, '/dev/pts')!;
  assert.equal(pts.type, 'bind');
  assert.equal(pts.source, '/dev/pts');
  assert.ok(pts.options?.includes('rbind'));
  assert.ok(!pts.options?.includes('newinstance'));
  assert.equal(mount(c, '/proc')!.type, 'proc');
  assert.equal(mount(c, '/dev')!.type, 'tmpfs');
  assert.ok(mount(c, '/dev/shm')!.options?.includes('mode=1777'));
  assert.equal(mount(c, '/dev/mqueue')!.type, 'mqueue');
  assert.ok(mount(c, '/sys')!.options?.includes('ro'));
  assert.equal(mount(c, '/sys/fs/cgroup')!.type, 'cgroup');
  assert.ok(mount(c, '/sys/fs/cgroup')!.options?.includes('ro'));
});

test('resolv.conf and hosts are bound read-only when given', () => {
  const c = workloadConfig({ ...base, binds: { '/etc/resolv.conf': '/run/hc/resolv.conf', '/etc/hosts': '/etc/hosts' } });
  assert.deepEqual(c.mounts.slice(-2), [
    { destination: '/etc/hosts', type: 'bind', source: '/etc/hosts', options: ['rbind', 'rprivate', 'ro'] },
    { destination: '/etc/resolv.conf', type: 'bind', source: '/run/hc/resolv.conf', options: ['rbind', 'rprivate', 'ro'] },
  ]);
});

test('limits: memory and pids only when non-zero; devices deny-all plus the standard allow list', () => {
  const none = workloadConfig({ ...base, limits: { memoryBytes: 0, pids: 0 } }).linux.resources;
  assert.equal(none.memory, undefined);
  assert.equal(none.pids, undefined);
  const r = workloadConfig({ ...base, limits: { memoryBytes: 64 * 1024 * 1024, pids: 64 } }).linux.resources;
  assert.deepEqual(r.memory, { limit: 67108864 });
  assert.deepEqual(r.pids, { limit: 64 });
  assert.deepEqual(r.devices[0], { allow: false, access: 'rwm' });
  const allowed = r.devices.slice(1).map((d) => `${d.type} ${d.major}:${d.minor ?? '*'}`);
  for (const dev of ['c 1:3', 'c 1:5', 'c 1:9', 'c 5:0', 'c 5:2', 'c 136:*']) assert.ok(allowed.includes(dev), `${dev} allowed`);
  assert.ok(r.devices.slice(1).every((d) => d.allow && d.access === 'rwm'));
});

test('masked and read-only paths as runc\'s defaults', () => {
  const c = workloadConfig(base);
  assert.deepEqual(c.linux.maskedPaths, [...MASKED_PATHS]);
  assert.deepEqual(c.linux.readonlyPaths, [...READONLY_PATHS]);
  for (const p of ['/proc/kcore', '/proc/keys', '/sys/firmware']) assert.ok(c.linux.maskedPaths.includes(p));
  for (const p of ['/proc/sys', '/proc/sysrq-trigger']) assert.ok(c.linux.readonlyPaths.includes(p));
});

test('bad input is refused before crun sees it', () => {
  assert.throws(() => workloadConfig({ ...base, process: { args: ['x'], user: 'www-data' } }), /uid\[:gid\]/);
  assert.throws(() => workloadConfig({ ...base, process: { args: ['x'], env: ['oops'] } }), /KEY=VALUE/);
  // It is plain JSON (what crun reads).
  const c = workloadConfig(base);
  assert.deepEqual(JSON.parse(JSON.stringify(c)), c);
});
