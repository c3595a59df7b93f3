import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteVmStore } from './sqlite-vm-store.js';
import { migrations } from './migrations.js';
import { openDatabase } from './database.js';
import type { Vm } from '../core/vm.js';

const vm: Vm = {
  id: 'abc0000000000001',
  name: 'persisted',
  state: 'running',
  provider: 'qemu',
  pid: 42,
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:01.000Z',
  spec: { name: 'persisted', description: '', cores: 1, memoryMib: 128, kernelArgs: '', drive: '/d', driveReadOnly: false, image: 'docker.io/library/alpine:latest', provider: 'qemu', hypervisor: { qemu: { accel: 'tcg' }, firecracker: {}, cloudHypervisor: {} } },
  disks: [{ name: 'image', path: '/x/image.qcow2', format: 'qcow2', readOnly: false }],
  imageDigest: `sha256:${'a'.repeat(64)}`,
  error: { code: 'HC_X', message: 'why' },
};

test('a VM survives a close and reopen of the database with every field, disks included', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hc-store-'));
  try {
    const file = join(dir, 'state.db');
    const first = new SqliteVmStore(file);
    first.insert(vm);
    first.close();
    const second = new SqliteVmStore(file);
    assert.deepEqual(second.get(vm.id), vm);
    assert.deepEqual(second.findByIdPrefix('abc'), [vm]);
    second.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the schema version is the number of migrations, and reopening does not migrate twice', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hc-store-'));
  try {
    const file = join(dir, 'state.db');
    openDatabase(file).close();
    const db = openDatabase(file);
    assert.equal(db.pragma('user_version', { simple: true }), migrations.length);
    db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
