import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StoreLock } from './store-lock.js';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

const tick = () => new Promise((r) => setImmediate(r));

test('exclusive waits for shared holders; shared ones wait for an exclusive holder', async () => {
  const lock = new StoreLock();
  const order: string[] = [];
  const pull = deferred();
  const a = lock.runShared(async () => {
    order.push('pull start');
    await pull.promise;
    order.push('pull end');
  });
  const prune = lock.runExclusive(async () => {
    order.push('prune');
  });
  await tick();
  assert.deepEqual(order, ['pull start']);
  pull.resolve();
  await Promise.all([a, prune]);
  assert.deepEqual(order, ['pull start', 'pull end', 'prune']);

  const gate = deferred();
  const held = lock.runExclusive(() => gate.promise);
  let ran = false;
  const later = lock.runShared(async () => void (ran = true));
  await tick();
  assert.equal(ran, false);
  gate.resolve();
  await Promise.all([held, later]);
  assert.equal(ran, true);
  assert.equal(lock.busy, false);
});

test('a shared hold nested in another does not deadlock behind a waiting exclusive one', async () => {
  const lock = new StoreLock();
  const inner = deferred();
  let pruned = false;
  const create = lock.runShared(async () => {
    await inner.promise;
    // A VM create pulling its image: a second shared hold while a prune waits.
    return lock.runShared(async () => 'pulled');
  });
  const prune = lock.runExclusive(async () => void (pruned = true));
  inner.resolve();
  assert.equal(await create, 'pulled');
  await prune;
  assert.equal(pruned, true);
});

test('a failing holder releases the lock', async () => {
  const lock = new StoreLock();
  await assert.rejects(lock.runShared(() => Promise.reject(new Error('boom'))), /boom/);
  await assert.rejects(lock.runExclusive(() => Promise.reject(new Error('bang'))), /bang/);
  assert.equal(lock.busy, false);
  assert.equal(await lock.runExclusive(async () => 1), 1);
});
