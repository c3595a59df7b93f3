import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OutputBuffer } from './output-buffer.js';

const b = (s: string): Buffer => Buffer.from(s);
const text = (chunks: { fd: number; offset: number; data: Buffer }[]) => chunks.map((c) => [c.fd, c.offset, c.data.toString()]);

test('absolute offsets, fd tags, merging of same-fd neighbours, resuming mid-chunk', () => {
  const o = new OutputBuffer(100);
  o.append(1, b('hello '));
  o.append(1, b('world\n'));
  o.append(2, b('oops\n'));
  o.append(1, b('bye\n'));
  assert.deepEqual(text(o.read(0).chunks), [[1, 0, 'hello world\n'], [2, 12, 'oops\n'], [1, 17, 'bye\n']]);
  assert.deepEqual(text(o.read(8).chunks), [[1, 8, 'rld\n'], [2, 12, 'oops\n'], [1, 17, 'bye\n']]);
  assert.deepEqual(o.read(21), { chunks: [], dropped: 0, next: 21 });
  assert.deepEqual(o.read(500), { chunks: [], dropped: 0, next: 21 }, 'past the end reads nothing');
  const limited = o.read(0, 5);
  assert.deepEqual(text(limited.chunks), [[1, 0, 'hello']]);
  assert.equal(limited.next, 5);
});

test('overflow evicts the oldest bytes (splitting a chunk) and reports the gap to readers', () => {
  const o = new OutputBuffer(10);
  o.append(1, b('0123456'));
  o.append(2, b('789AB'));
  assert.equal(o.start, 2);
  assert.equal(o.end, 12);
  assert.equal(o.droppedBytes, 2);
  const r = o.read(0);
  assert.equal(r.dropped, 2);
  assert.deepEqual(text(r.chunks), [[1, 2, '23456'], [2, 7, '789AB']]);
  o.append(1, b('x'.repeat(25)));
  assert.equal(o.start, 27);
  assert.equal(o.droppedBytes, 27);
  assert.deepEqual(text(o.read(20).chunks), [[1, 27, 'x'.repeat(10)]]);
  assert.equal(o.read(20).dropped, 7);
});

test('many small chunks stay consistent across compaction', () => {
  const o = new OutputBuffer(1000);
  let all = '';
  for (let i = 0; i < 5000; i++) {
    const s = `${i % 10}`;
    o.append(1, b(s));
    all += s;
  }
  const r = o.read(0, 10_000);
  assert.equal(r.dropped, 4000);
  assert.equal(r.chunks.map((c) => c.data.toString()).join(''), all.slice(4000));
});

test('changed() wakes waiters on append and close, and honours abort', async () => {
  const o = new OutputBuffer(10);
  const woke = o.changed();
  o.append(1, b('x'));
  await woke;
  const ac = new AbortController();
  const aborted = o.changed(ac.signal);
  ac.abort(new Error('gone'));
  await assert.rejects(aborted, /gone/);
  const closing = o.changed();
  o.close();
  await closing;
  assert.equal(o.closed, true);
  await o.changed(); // resolves at once when closed
  o.append(1, b('late'));
  assert.equal(o.end, 1, 'nothing is added after close');
  assert.throws(() => new OutputBuffer(0), RangeError);
});

test('a holding reader keeps its unread bytes and asks the producer to pause once a whole buffer behind', () => {
  const o = new OutputBuffer(10);
  const pressure: boolean[] = [];
  o.onPressure = (full) => pressure.push(full);
  const hold = o.hold(0);
  o.append(1, b('0123456'));
  assert.deepEqual(pressure, []);
  o.append(1, b('789AB'));
  assert.deepEqual(pressure, [true], 'a whole buffer behind: pause');
  assert.equal(o.start, 0, 'nothing the reader has not read is evicted, even past the capacity');
  assert.equal(o.read(0).chunks[0]?.data.toString(), '0123456789AB');
  hold.advance(6);
  assert.deepEqual(pressure, [true, false], 'the reader caught up: go on');
  assert.equal(o.start, 2, 'evicted down to the capacity, no further than the reader');
  hold.advance(8);
  o.append(1, b('CDEFGH'));
  assert.equal(o.start, 8);
  assert.equal(o.full, true);
  hold.release();
  assert.equal(o.full, false, 'a reader that left holds nothing');
  assert.deepEqual(pressure, [true, false, true, false]);
});
