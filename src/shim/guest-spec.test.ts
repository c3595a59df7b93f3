import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HypercoreError } from '../core/errors.js';
import { guestSpec, MAX_BOUND_FILE_BYTES, networkNamespacePath, type BoundFile, type HostSpec } from './guest-spec.js';

const files: Record<string, BoundFile> = {
  '/var/lib/cri/sandboxes/s1/hosts': { kind: 'file', size: 120 },
  '/var/lib/cri/sandboxes/s1/shm': { kind: 'directory', size: 0 },
  '/srv/data': { kind: 'directory', size: 0 },
  '/big': { kind: 'file', size: MAX_BOUND_FILE_BYTES + 1 },
  '/dev/sda': { kind: 'other', size: 0 },
};
const inspect = (path: string): BoundFile => files[path] ?? { kind: 'missing', size: 0 };

function criContainer(extra: Partial<HostSpec> = {}): HostSpec {
  return {
    ociVersion: '1.0.2-dev',
    process: { args: ['sh', '-c', 'echo hi'], env: ['PATH=/bin'], cwd: '/', apparmorProfile: 'cri-containerd.apparmor.d', user: { uid: 0, gid: 0 } },
    root: { path: 'rootfs', readonly: false },
    hostname: 'pod',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['newinstance'] },
      { destination: '/etc/hosts', type: 'bind', source: '/var/lib/cri/sandboxes/s1/hosts', options: ['rbind', 'rprivate', 'rw'] },
      { destination: '/dev/shm', type: 'bind', source: '/var/lib/cri/sandboxes/s1/shm', options: ['rbind', 'rprivate', 'rw'] },
    ],
    hooks: { prestart: [{ path: '/usr/bin/host-hook' }] },
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'ipc', path: '/proc/42/ns/ipc' }, { type: 'uts', path: '/proc/42/ns/uts' }, { type: 'mount' }, { type: 'network', path: '/var/run/netns/cni-1' }],
      resources: { memory: { limit: 134217728 }, blockIO: { weight: 10 }, devices: [{ allow: false, access: 'rwm' }] },
      cgroupsPath: '/k8s.io/abc',
      maskedPaths: ['/proc/kcore'],
      mountLabel: 'x',
    },
    ...extra,
  };
}

test('a CRI container: host files copied in, shm a tmpfs, devpts the guest ptys, network dropped, namespaces joined in the guest, host things gone', () => {
  const g = guestSpec(criContainer(), inspect, false);
  assert.deepEqual(g.files, [{ name: 'f0', hostPath: '/var/lib/cri/sandboxes/s1/hosts' }]);
  assert.deepEqual(g.shareNamespaces, ['ipc', 'uts']);
  const config = g.config as { mounts: { destination: string; type: string; source: string }[]; linux: Record<string, unknown>; process: Record<string, unknown>; hooks?: unknown };
  assert.deepEqual(config.mounts.map((m) => [m.destination, m.type, m.source]), [
    ['/proc', 'proc', 'proc'],
    ['/dev/pts', 'bind', '/dev/pts'],
    ['/etc/hosts', 'bind', 'files/f0'],
    ['/dev/shm', 'tmpfs', 'shm'],
  ]);
  assert.deepEqual(config.linux['namespaces'], [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }]);
  assert.deepEqual(config.linux['resources'], { memory: { limit: 134217728 }, devices: [{ allow: false, access: 'rwm' }] });
  assert.equal(config.linux['cgroupsPath'], undefined);
  assert.equal(config.linux['mountLabel'], undefined);
  assert.deepEqual(config.linux['maskedPaths'], ['/proc/kcore']);
  assert.equal(config.hooks, undefined);
  assert.equal(config.process['apparmorProfile'], undefined);
  assert.equal(config.process['terminal'], false);
  assert.equal(networkNamespacePath(criContainer()), '/var/run/netns/cni-1');
});

test('a sandbox joins nothing: a namespace path in its spec is refused', () => {
  assert.throws(() => guestSpec(criContainer(), inspect, true), /namespace ipc at \/proc\/42\/ns\/ipc cannot be joined/);
});

test('binds of host directories, devices, missing or large files are refused, naming the mount', () => {
  const withMount = (source: string) => criContainer({ mounts: [{ destination: '/mnt', type: 'bind', source, options: ['rbind'] }] });
  const refused = (source: string, pattern: RegExp) =>
    assert.throws(() => guestSpec(withMount(source), inspect, false), (err: unknown) => err instanceof HypercoreError && err.code === 'HC_INVALID_ARGUMENT' && pattern.test(err.message));
  refused('/srv/data', /bind mount of host directory \/srv\/data at \/mnt is not supported/);
  refused('/dev/sda', /host \/dev\/sda is not a regular file/);
  refused('/nope', /host file \/nope does not exist/);
  refused('/big', /more than the 1048576 copied/);
  refused('relative', /must be an absolute host path/);
});

test('a spec without a process, a user namespace or an unknown mount type is refused', () => {
  assert.throws(() => guestSpec({ process: { args: [] } }, inspect, true), /no process to run/);
  assert.throws(() => guestSpec(criContainer({ linux: { namespaces: [{ type: 'user' }] } }), inspect, false), /user namespaces are not supported/);
  assert.throws(() => guestSpec(criContainer({ mounts: [{ destination: '/x', type: 'nfs', source: 'srv:/x' }] }), inspect, false), /mount of type "nfs" at \/x is not supported/);
});
