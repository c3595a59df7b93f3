import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameBoundaryWatch } from './frame-watch.js';

function frame(payload: string, streamId = 1): Buffer {
  const data = Buffer.from(payload);
  const header = Buffer.alloc(10);
  header.writeUInt32BE(data.length, 0);
  header.writeUInt32BE(streamId, 4);
  header[8] = 1;
  return Buffer.concat([header, data]);
}

test('frames pass through whole, even split byte by byte', () => {
  const watch = new FrameBoundaryWatch();
  const stream = Buffer.concat([frame('hello'), frame('HCSYNC inside a payload is data'), frame('')]);
  const out: Buffer[] = [];
  for (const byte of stream) {
    const r = watch.push(Buffer.from([byte]));
    assert.equal(r.resync, undefined);
    out.push(r.forward);
  }
  assert.deepEqual(Buffer.concat(out), stream);
});

test('a new host handshake at a frame boundary cuts the stream there', () => {
  const watch = new FrameBoundaryWatch();
  const sync = Buffer.from('HCSYNC abcdef0123456789\n');
  const r = watch.push(Buffer.concat([frame('old'), sync, frame('new')]));
  assert.deepEqual(r.forward, frame('old'));
  assert.deepEqual(r.resync, Buffer.concat([sync, frame('new')]));
});

test('the handshake is found when it arrives split after a partial header wait', () => {
  const watch = new FrameBoundaryWatch();
  assert.deepEqual(watch.push(frame('x')).forward, frame('x'));
  assert.equal(watch.push(Buffer.from('HCSY')).forward.length, 0);
  const r = watch.push(Buffer.from('NC 0123456789abcdef\n'));
  assert.equal(r.resync?.toString(), 'HCSYNC 0123456789abcdef\n');
});
