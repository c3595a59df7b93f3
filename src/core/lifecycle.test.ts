import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canTransition } from './lifecycle.js';

test('a stopped VM can start but cannot stop again', () => {
  assert.equal(canTransition('stopped', 'starting'), true);
  assert.equal(canTransition('stopped', 'stopping'), false);
});
