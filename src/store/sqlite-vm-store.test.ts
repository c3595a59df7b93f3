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

test("list follows this store's writes, another connection's, and not a rolled-back one; a listed record is frozen and kept while unchanged", () => {
  const dir = mkdtempSync(join(tmpdir(), 'hc-store-'));
  const file = join(dir, 'state.db');
  const db = openDatabase(file);
  const store = new SqliteVmStore(db);
  // Another connection, as another process (or the bench's seeding) writes beside the daemon.
  const other = new SqliteVmStore(file);
  try {
    const names = () => store.list().map((v) => `${v.name}:${v.state}`);
    assert.deepEqual(store.list(), []);
    store.insert(vm);
    const [listed] = store.list();
    assert.deepEqual(listed, vm);
    assert.ok(Object.isFrozen(listed) && Object.isFrozen(listed!.spec) && Object.isFrozen(listed!.disks![0]));
    assert.throws(() => ((listed as Vm).state = 'stopped'), TypeError);
    assert.equal(store.list()[0], listed, 'the same record while nothing changed');

    store.update({ ...vm, state: 'stopped', updatedAt: vm.updatedAt });
    assert.deepEqual(names(), ['persisted:stopped']);
    assert.notEqual(store.list()[0], listed);

    const older = { ...vm, id: 'abc0000000000002', name: 'older', createdAt: '2025-12-31T00:00:00.000Z' };
    other.insert(older);
    assert.deepEqual(names(), ['older:running', 'persisted:stopped'], 'oldest first');
    other.update({ ...older, state: 'failed' });
    assert.deepEqual(names(), ['older:failed', 'persisted:stopped']);
    other.delete(vm.id);
    assert.deepEqual(names(), ['older:failed']);

    assert.throws(() =>
      db.transaction(() => {
        store.insert({ ...vm, id: 'abc0000000000003', name: 'undone' });
        store.delete(older.id);
        throw new Error('roll back');
      })(),
    );
    assert.deepEqual(names(), ['older:failed']);
    store.delete(older.id);
    assert.deepEqual(store.list(), []);
  } finally {
    other.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
