import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Vm } from '../core/vm.js';
import { publicVm } from './redaction.js';

const now = new Date().toISOString();
const vm: Vm = { id: 'a'.repeat(16), name: 'v', state: 'creating', provider: 'qemu', createdAt: now, updatedAt: now, disks: [], spec: { name: 'v', description: '', cores: 1, memoryMib: 256, kernelArgs: '', driveReadOnly: false, provider: 'qemu', hypervisor: {} } };

test('a create in progress shows no internal mark; secrets and file contents stay hidden', () => {
  assert.equal('defineOnly' in publicVm({ ...vm, defineOnly: true }), false);
  assert.equal(publicVm(vm), vm, 'a VM with nothing to hide is answered as it is');
  const withMetadata: Vm = { ...vm, spec: { ...vm.spec, metadata: { values: { a: '1' }, secrets: { token: 's3cr3t' }, sshAuthorizedKeys: [], files: [{ path: '/etc/x', mode: '0600', owner: '0', content: 'key' }] } } };
  const shown = JSON.stringify(publicVm(withMetadata));
  assert.doesNotMatch(shown, /s3cr3t|"content"/);
  assert.match(shown, /"size":3/);
});
