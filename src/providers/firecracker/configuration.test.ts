import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OpenApiContract } from '../shared/openapi-contract.js';
import { configurationRequests, diskMapArgument, INSTANCE_START, kernelCommandLine, virtioDiskName, type FirecrackerPlan } from './configuration.js';
import { FIRECRACKER_SPEC } from './testing/fake-firecracker.js';
import { fcSpec } from './testing/fixtures.js';

const full: FirecrackerPlan = {
  spec: fcSpec('vm', 'firecracker', { cores: 3, memoryMib: 512 }),
  boot: { kernel: '/boot/vmlinux', initrd: '/boot/initrd.img', args: ['hc.root=vda', 'hc.rootflags=ro', 'quiet'] },
  rootDisk: { path: '/images/system.ext4', readOnly: true },
  disks: [
    { name: 'image', path: '/images/app.ext4', format: 'raw', readOnly: true },
    { name: 'scratch', path: '/vms/x/scratch.raw', format: 'raw', readOnly: false },
    { name: 'odd name/..', path: '/vms/x/extra.raw', format: 'raw', readOnly: false },
  ],
  network: { tap: 'hc-t1', mac: '02:00:00:00:00:01', ip: '10.0.0.2', prefixLength: 24, gateway: '10.0.0.1', dns: [] },
  vsockSocket: '/run/hypercore/vms/x/vsock.sock',
};

test('every configuration request of a full plan matches the official API document', async () => {
  const api = await OpenApiContract.load(FIRECRACKER_SPEC);
  for (const request of [...configurationRequests(full), INSTANCE_START]) {
    const check = api.check(request.method, request.path, request.body);
    assert.ok(check.ok, `${request.method} ${request.path}: ${check.ok ? '' : check.problem}`);
  }
});

test('drive ids are the disk names when they fit a URL path, positional otherwise', () => {
  const paths = configurationRequests(full).map((r) => r.path).filter((p) => p.startsWith('/drives/'));
  assert.deepEqual(paths, ['/drives/root', '/drives/image', '/drives/scratch', '/drives/disk3']);
});

test('kernel arguments: Firecracker\'s own, the disk map, then the boot contract\'s (user args last)', () => {
  assert.equal(
    kernelCommandLine(full),
    'console=ttyS0 reboot=k panic=1 i8042.noaux i8042.nomux i8042.dumbkbd hc.poweroff=reboot hc.disks=image:vdb,scratch:vdc hc.root=vda hc.rootflags=ro quiet',
  );
  assert.equal(diskMapArgument({ ...full, disks: [] }), undefined);
  const { rootDisk: _r, ...noRoot } = full;
  assert.equal(diskMapArgument({ ...noRoot, disks: full.disks.slice(0, 1) }), 'hc.disks=image:vda');
});

test('virtio disk names go on after vdz', () => {
  assert.deepEqual([0, 1, 25, 26, 27, 51, 52].map(virtioDiskName), ['vda', 'vdb', 'vdz', 'vdaa', 'vdab', 'vdaz', 'vdba']);
});
