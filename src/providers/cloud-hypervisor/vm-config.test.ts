import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OpenApiContract } from '../shared/openapi-contract.js';
import { CLOUD_HYPERVISOR_SPEC } from './testing/fake-cloud-hypervisor.js';
import { chSpec } from './testing/fixtures.js';
import { parseCloudHypervisorVersion, atLeastMinimum } from './version.js';
import { vmConfig, type CloudHypervisorPlan } from './vm-config.js';

const plan: CloudHypervisorPlan = {
  spec: chSpec('cfg', 'cloud-hypervisor', { cores: 3, memoryMib: 384 }),
  boot: { kernel: '/boot/vmlinuz', args: ['root=/dev/vda', 'rw', 'quiet'] },
  rootDisk: { path: '/vm/root.raw', readOnly: false },
  disks: [
    { name: 'data disk', path: '/vm/a.raw', format: 'raw', readOnly: false },
    { name: 'a-name-longer-than-twenty', path: '/vm/b.qcow2', format: 'qcow2', readOnly: true },
    { name: 'image', path: '/vm/image.qcow2', format: 'qcow2', readOnly: false, backing: '/images/block.ext4' },
  ],
  vsockSocket: '/run/vm/vsock.sock',
};

test('vm.create: bytes of memory, no initramfs when none, positional ids and no serial for names that do not fit, backing files only for recorded overlays', async () => {
  const config = vmConfig(plan);
  assert.deepEqual(config['cpus'], { boot_vcpus: 3, max_vcpus: 3 });
  assert.deepEqual(config['memory'], { size: 384 * 1024 * 1024 });
  assert.deepEqual(config['payload'], { kernel: '/boot/vmlinuz', cmdline: 'console=ttyS0 root=/dev/vda rw quiet' });
  assert.deepEqual(config['disks'], [
    { id: 'root', path: '/vm/root.raw', readonly: false, image_type: 'Raw' },
    { id: 'disk1', path: '/vm/a.raw', readonly: false, image_type: 'Raw' },
    { id: 'disk2', path: '/vm/b.qcow2', readonly: true, image_type: 'Qcow2' },
    { id: 'image', path: '/vm/image.qcow2', readonly: false, serial: 'image', image_type: 'Qcow2', backing_files: true },
  ]);
  const contract = await OpenApiContract.load(CLOUD_HYPERVISOR_SPEC);
  assert.deepEqual(contract.check('PUT', '/api/v1/vm.create', config), { ok: true, operation: { method: 'PUT', template: '/vm.create', pathParams: {} } });
});

test('versions: --version, git describe and vmm.ping forms; 51.0 is the minimum', () => {
  assert.deepEqual(parseCloudHypervisorVersion('cloud-hypervisor v51.0\n'), { major: 51, minor: 0, text: 'v51.0' });
  assert.deepEqual(parseCloudHypervisorVersion('cloud-hypervisor v52.0-14-g1a2b3c4-dirty'), { major: 52, minor: 0, text: 'v52.0-14-g1a2b3c4-dirty' });
  assert.deepEqual(parseCloudHypervisorVersion('51.1.0'), { major: 51, minor: 1, text: 'v51.1.0' });
  assert.equal(parseCloudHypervisorVersion('Firecracker v1.10.1'), undefined);
  assert.equal(parseCloudHypervisorVersion('cloud-hypervisor'), undefined);
  assert.equal(atLeastMinimum(parseCloudHypervisorVersion('v50.9')!), false);
  assert.equal(atLeastMinimum(parseCloudHypervisorVersion('v51.0')!), true);
  assert.equal(atLeastMinimum(parseCloudHypervisorVersion('v100.0')!), true);
});
