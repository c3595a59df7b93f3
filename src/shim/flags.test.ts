import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFlags } from './flags.js';

test("containerd 1.6's start and delete command lines, verbatim", () => {
  assert.deepEqual(parseFlags(['-namespace', 'k8s.io', '-address', '/run/containerd/containerd.sock', '-publish-binary', '/usr/bin/containerd', '-id', 'abc', '-debug', 'start']), {
    namespace: 'k8s.io',
    address: '/run/containerd/containerd.sock',
    publishBinary: '/usr/bin/containerd',
    id: 'abc',
    command: 'start',
  });
  assert.deepEqual(parseFlags(['-namespace', 'hc', '-address', '/a', '-publish-binary', '/b', '-id', 't1', '-bundle', '/s/t1', 'delete']).bundle, '/s/t1');
  assert.equal(parseFlags(['--id=x', 'start']).id, 'x');
});

test('unknown flags, missing values and stray arguments are errors', () => {
  assert.throws(() => parseFlags(['-frobnicate', 'start']), /unknown flag -frobnicate/);
  assert.throws(() => parseFlags(['-id']), /flag -id needs a value/);
  assert.throws(() => parseFlags(['start', 'delete']), /unexpected argument "delete"/);
});
