import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { encodeFrame, Flags, FrameDecoder, FrameTooLargeError, MESSAGE_LENGTH_MAX, MessageType, writeHeader, type DecodeEvent, type Frame } from './framing.js';

function framesOf(events: DecodeEvent[]): Frame[] {
  return events.map((e) => {
    assert.equal(e.kind, 'frame');
    return (e as { frame: Frame }).frame;
  });
}

function sample(n: number): { buf: Buffer; expected: { streamId: number; type: number; flags: number; data: Buffer }[] } {
  const expected = [];
  for (let i = 0; i < n; i++) {
    const size = i % 7 === 0 ? 0 : (i * 37) % 300;
    expected.push({ streamId: 2 * i + 1, type: (i % 3) + 1, flags: i % 8, data: randomBytes(size) });
  }
  const buf = Buffer.concat(expected.map((f) => encodeFrame(f.streamId, f.type, f.flags, f.data)));
  return { buf, expected };
}

function assertSame(got: Frame[], expected: ReturnType<typeof sample>['expected']): void {
  assert.equal(got.length, expected.length);
  got.forEach((f, i) => {
    const e = expected[i]!;
    assert.deepEqual([f.streamId, f.type, f.flags, f.length], [e.streamId, e.type, e.flags, e.data.length], `frame ${i}`);
    assert.ok(Buffer.from(f.data).equals(e.data), `frame ${i} data`);
  });
}

test('header layout: BE length, BE stream id, type, flags', () => {
  const f = encodeFrame(0x01020304, MessageType.Data, Flags.RemoteClosed | Flags.NoData, Buffer.from('hello'));
  assert.equal(f.subarray(0, 10).toString('hex'), '00000005' + '01020304' + '03' + '05');
  assert.equal(f.subarray(10).toString(), 'hello');
});

test('frames split byte by byte decode identically', () => {
  const { buf, expected } = sample(60);
  const d = new FrameDecoder();
  const got: Frame[] = [];
  for (let i = 0; i < buf.length; i++) got.push(...framesOf(d.push(buf.subarray(i, i + 1))));
  assertSame(got, expected);
  assert.ok(d.atBoundary);
});

test('frames split at random points decode identically', () => {
  const { buf, expected } = sample(200);
  const d = new FrameDecoder();
  const got: Frame[] = [];
  for (let off = 0; off < buf.length; ) {
    const n = 1 + Math.floor(Math.random() * 700);
    got.push(...framesOf(d.push(buf.subarray(off, off + n))));
    off += n;
  }
  assertSame(got, expected);
});

test('every way of cutting three frames into three chunks decodes identically', () => {
  // Exhaustive over both cut points: covers a cut right after a header, inside a header, inside a body.
  const expected = [
    { streamId: 1, type: 1, flags: 0, data: Buffer.from('first body') },
    { streamId: 3, type: 2, flags: 0, data: Buffer.from('the second, longer body') },
    { streamId: 5, type: 3, flags: 1, data: Buffer.alloc(0) },
  ];
  const buf = Buffer.concat(expected.map((f) => encodeFrame(f.streamId, f.type, f.flags, f.data)));
  for (let i = 0; i <= buf.length; i++) {
    for (let j = i; j <= buf.length; j++) {
      const d = new FrameDecoder();
      const got = [buf.subarray(0, i), buf.subarray(i, j), buf.subarray(j)].flatMap((c) => framesOf(d.push(c)));
      assertSame(got, expected);
    }
  }
});

test('many frames in one chunk, plus a trailing partial one', () => {
  const { buf, expected } = sample(1000);
  const extra = encodeFrame(4001, MessageType.Request, 0, Buffer.from('tail'));
  const d = new FrameDecoder();
  assertSame(framesOf(d.push(Buffer.concat([buf, extra.subarray(0, 12)]))), expected);
  assert.equal(d.atBoundary, false);
  assert.equal(d.pendingBytes, 12);
  const last = framesOf(d.push(extra.subarray(12)));
  assert.equal(last.length, 1);
  assert.equal(last[0]!.data.toString(), 'tail');
});

test('a frame inside one chunk is a view of it (no copy)', () => {
  const chunk = encodeFrame(1, MessageType.Request, 0, Buffer.from('abc'));
  const [f] = framesOf(new FrameDecoder().push(chunk));
  assert.equal(f!.data.buffer, chunk.buffer);
});

test('decoding is linear: a 4 MiB frame fed in 1 KiB chunks is fast', () => {
  const body = randomBytes(MESSAGE_LENGTH_MAX);
  const buf = encodeFrame(1, MessageType.Response, 0, body);
  const d = new FrameDecoder();
  const t0 = performance.now();
  const got: Frame[] = [];
  for (let off = 0; off < buf.length; off += 1024) got.push(...framesOf(d.push(buf.subarray(off, off + 1024))));
  const ms = performance.now() - t0;
  assert.equal(got.length, 1);
  assert.ok(got[0]!.data.equals(body));
  // Re-buffering everything per chunk would copy ~8 GiB here; a linear decoder copies 4 MiB.
  assert.ok(ms < 1500, `took ${ms} ms`);
});

test('data of exactly 4 MiB and 4 MiB - 1 is accepted', () => {
  for (const size of [MESSAGE_LENGTH_MAX - 1, MESSAGE_LENGTH_MAX]) {
    const got = framesOf(new FrameDecoder().push(encodeFrame(7, MessageType.Request, 0, Buffer.alloc(size, 1))));
    assert.equal(got[0]!.length, size);
  }
});

test('encodeFrame refuses 4 MiB + 1 with FrameTooLargeError (RESOURCE_EXHAUSTED)', () => {
  assert.throws(
    () => encodeFrame(1, MessageType.Request, 0, Buffer.alloc(MESSAGE_LENGTH_MAX + 1)),
    (e: unknown) => e instanceof FrameTooLargeError && e.code === 8 && e.length === MESSAGE_LENGTH_MAX + 1,
  );
});

function oversizedFrame(streamId: number, length: number): Buffer {
  const b = Buffer.alloc(10 + length, 0xab);
  writeHeader(b, 0, { length, streamId, type: MessageType.Request, flags: 0 });
  return b;
}

test('oversized frame: body skipped (even byte by byte), typed error, decoding resumes (Go behaviour)', () => {
  const big = oversizedFrame(5, MESSAGE_LENGTH_MAX + 1);
  const next = encodeFrame(7, MessageType.Request, 0, Buffer.from('after'));
  const d = new FrameDecoder();
  const events: DecodeEvent[] = [];
  events.push(...d.push(big.subarray(0, 10)));
  assert.equal(events.length, 0, 'notice comes after the discarded body, as Go answers after Discard');
  events.push(...d.push(big.subarray(10, big.length - 3)));
  for (let i = big.length - 3; i < big.length; i++) events.push(...d.push(big.subarray(i, i + 1)));
  events.push(...d.push(next));
  assert.equal(events.length, 2);
  const [over, frame] = events;
  assert.equal(over!.kind, 'oversize');
  if (over!.kind === 'oversize') {
    assert.ok(over.error instanceof FrameTooLargeError);
    assert.equal(over.header.streamId, 5);
    assert.equal(over.error.message, `message length ${MESSAGE_LENGTH_MAX + 1} exceed maximum message size of ${MESSAGE_LENGTH_MAX}`);
  }
  assert.equal(frame!.kind, 'frame');
  if (frame!.kind === 'frame') assert.equal(frame.frame.data.toString(), 'after');
});

test("oversize 'fail' mode stops decoding with the typed error", () => {
  const d = new FrameDecoder({ oversize: 'fail', maxLength: 100 });
  const ok = encodeFrame(1, MessageType.Request, 0, Buffer.alloc(100));
  const events = d.push(Buffer.concat([ok, oversizedFrame(3, 101).subarray(0, 10)]));
  assert.deepEqual(events.map((e) => e.kind), ['frame', 'oversize']);
  assert.throws(() => d.push(Buffer.alloc(1)), FrameTooLargeError);
});

test('a non-zero reserved first byte is treated as oversized', () => {
  const b = encodeFrame(1, MessageType.Request, 0, Buffer.from('x'));
  b[0] = 1;
  const d = new FrameDecoder({ oversize: 'fail' });
  const [ev] = d.push(b);
  assert.equal(ev!.kind, 'oversize');
});
