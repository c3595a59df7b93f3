import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { pacedProgress } from './client-pace.js';

interface P {
  phase: string;
  layer?: string;
  current?: number;
}

/** A client stream that takes `room` messages, then reports full until `drain()`. */
class FakeSink extends EventEmitter {
  readonly written: P[] = [];
  constructor(private room: number) {
    super();
  }
  write(p: P): boolean {
    this.written.push(p);
    return --this.room > 0;
  }
  drain(room: number): void {
    this.room = room;
    this.emit('drain');
  }
}

test('progress for a client that does not read: one waiting message per phase and layer, the newest', () => {
  const sink = new FakeSink(2);
  const progress = pacedProgress<P>(sink);
  progress.push({ phase: 'resolving' });
  progress.push({ phase: 'downloading', layer: 'a', current: 0 });
  for (let i = 1; i <= 100_000; i++) progress.push({ phase: 'downloading', layer: i % 2 ? 'a' : 'b', current: i });
  assert.equal(sink.written.length, 2, 'nothing more is written while the client is full');
  sink.drain(100);
  assert.deepEqual(sink.written.slice(2), [
    { phase: 'downloading', layer: 'a', current: 99_999 },
    { phase: 'downloading', layer: 'b', current: 100_000 },
  ]);
  progress.push({ phase: 'done' });
  progress.finish();
  assert.deepEqual(sink.written.at(-1), { phase: 'done' });
});

test('the waiting messages are bounded even with endless distinct layers; finish sends them', () => {
  const sink = new FakeSink(1);
  const progress = pacedProgress<P>(sink);
  for (let i = 0; i < 10_000; i++) progress.push({ phase: 'downloading', layer: `l${i}` });
  progress.push({ phase: 'done' });
  progress.finish();
  assert.ok(sink.written.length <= 1 + 256, `${sink.written.length} messages were kept`);
  assert.deepEqual(sink.written.at(-1), { phase: 'done' });
});
