import { test } from 'node:test';
import assert from 'node:assert/strict';
import { editDistance, suggestKeys } from './suggest.js';

const known = [
  ['spacecore'],
  ['spacecore', 'name'],
  ['hardware'],
  ['hardware', 'cores'],
  ['hardware', 'memory'],
  ['hardware', 'drive'],
  ['hardware', 'drive_readonly'],
  ['hypervisor'],
  ['hypervisor', 'provider'],
  ['hypervisor', 'cloud_hypervisor'],
  ['hypervisor', 'qemu', 'binary'],
  ['hypervisor', 'firecracker', 'binary'],
  ['hardware', 'ref'],
  ['workload'],
  ['workload', 'command'],
  ['workload', 'workdir'],
];

test('editDistance: insertions, substitutions and neighbour swaps count one each', () => {
  assert.equal(editDistance('core', 'cores'), 1);
  assert.equal(editDistance('memroy', 'memory'), 1);
  assert.equal(editDistance('kitten', 'sitting'), 3);
  assert.equal(editDistance('', 'abc'), 3);
  assert.equal(editDistance('same', 'same'), 0);
});

test('suggestKeys: a close sibling in the same table', () => {
  assert.deepEqual(suggestKeys(['hardware', 'core'], known), [['hardware', 'cores']]);
  assert.deepEqual(suggestKeys(['hardware', 'memroy'], known), [['hardware', 'memory']]);
  assert.deepEqual(suggestKeys(['hardwre'], known), [['hardware']]);
});

test('suggestKeys: case, "-" versus "_", and prefixes are close', () => {
  assert.deepEqual(suggestKeys(['hypervisor', 'cloud-hypervisor'], known), [['hypervisor', 'cloud_hypervisor']]);
  assert.deepEqual(suggestKeys(['hardware', 'Cores'], known), [['hardware', 'cores']]);
  assert.deepEqual(suggestKeys(['hardware', 'mem'], known), [['hardware', 'memory']]);
});

test('suggestKeys: only the closest siblings', () => {
  assert.deepEqual(suggestKeys(['hardware', 'driv'], known), [['hardware', 'drive']]);
  assert.deepEqual(suggestKeys(['hardware', 'drive_read_only'], known), [['hardware', 'drive_readonly']]);
});

test('suggestKeys: the same name in another table when no sibling is close', () => {
  assert.deepEqual(suggestKeys(['hardware', 'provider'], known), [['hypervisor', 'provider']]);
  assert.deepEqual(suggestKeys(['name'], known), [['spacecore', 'name']]);
  assert.deepEqual(suggestKeys(['binary'], known), [
    ['hypervisor', 'qemu', 'binary'],
    ['hypervisor', 'firecracker', 'binary'],
  ]);
});

test('suggestKeys: nothing for names far from every key', () => {
  assert.deepEqual(suggestKeys(['hardware', 'gpu'], known), []);
  assert.deepEqual(suggestKeys(['network'], known), []);
});

test("suggestKeys: other tools' names for our keys, in the same table or another", () => {
  assert.deepEqual(suggestKeys(['workload', 'cmd'], known), [['workload', 'command']]);
  assert.deepEqual(suggestKeys(['workload', 'working_dir'], known), [['workload', 'workdir']]);
  assert.deepEqual(suggestKeys(['workload', 'image'], known), [['hardware', 'ref']]);
  assert.deepEqual(suggestKeys(['hardware', 'image'], known), [['hardware', 'ref']]);
  assert.deepEqual(suggestKeys(['cmd'], known), [['workload', 'command']]);
  assert.deepEqual(suggestKeys(['workload', 'toString'], known), []);
});
