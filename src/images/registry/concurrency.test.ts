import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { InFlight, Limiter } from './concurrency.js';

test('the limiter never runs more than max tasks and runs them all', async () => {
  const limiter = new Limiter(2);
  let running = 0;
  let peak = 0;
  const results = await Promise.all(
    [5, 1, 3, 2, 4, 1].map((ms, i) =>
      limiter.run(async () => {
        running++;
        peak = Math.max(peak, running);
        await delay(ms * 3);
        running--;
        return i;
      }),
    ),
  );
  assert.deepEqual(results, [0, 1, 2, 3, 4, 5]);
  assert.equal(peak, 2);
  assert.equal(limiter.running, 0);
  await assert.rejects(limiter.run(async () => Promise.reject(new Error('boom'))), /boom/);
  assert.equal(limiter.running, 0, 'a failed task releases its slot');
});

test('in-flight tasks with the same key run once and share progress; the key is freed afterwards', async () => {
  const flights = new InFlight<string, number>();
  let starts = 0;
  const seenA: number[] = [];
  const seenB: number[] = [];
  const start = async (report: (n: number) => void): Promise<string> => {
    starts++;
    report(1);
    await delay(10);
    report(2);
    return 'done';
  };
  const a = flights.run('k', start, (n) => seenA.push(n));
  const b = flights.run('k', start, (n) => seenB.push(n));
  assert.equal(flights.size, 1);
  assert.deepEqual(await Promise.all([a, b]), ['done', 'done']);
  assert.equal(starts, 1);
  assert.deepEqual(seenA, [1, 2]);
  assert.deepEqual(seenB, [1, 2]);
  assert.equal(flights.size, 0);
  await flights.run('k', start);
  assert.equal(starts, 2, 'a later call starts afresh');
  await assert.rejects(Promise.all([flights.run('e', async () => Promise.reject(new Error('x'))), flights.run('e', start)]), /x/);
  assert.equal(flights.size, 0);
});
