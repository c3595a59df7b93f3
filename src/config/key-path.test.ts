import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatKeyPath, getAt } from './key-path.js';

test('formatKeyPath: bare keys dotted, others quoted, array indices in brackets', () => {
  assert.equal(formatKeyPath(['hardware', 'cores']), 'hardware.cores');
  assert.equal(formatKeyPath(['a.b', 'c d']), '"a.b"."c d"');
  assert.equal(formatKeyPath(['workload', 'env', 1]), 'workload.env[1]');
  assert.equal(formatKeyPath(['x', 0, 2, 'y']), 'x[0][2].y');
  assert.equal(formatKeyPath(['x', '1']), 'x.1');
  assert.equal(formatKeyPath([]), '');
});

test('getAt: tables by key, arrays by index, undefined for anything missing', () => {
  const tree = { workload: { env: ['A=1', { k: 'v' }] } };
  assert.equal(getAt(tree, ['workload', 'env', 0]), 'A=1');
  assert.equal(getAt(tree, ['workload', 'env', 1, 'k']), 'v');
  assert.equal(getAt(tree, ['workload', 'env', 2]), undefined);
  assert.equal(getAt(tree, ['workload', 'env', '0']), undefined);
  assert.equal(getAt(tree, ['workload', 0]), undefined);
  assert.equal(getAt(tree, ['workload', 'env', -1]), undefined);
});
