import { test } from 'node:test';
import assert from 'node:assert/strict';
import protobuf from 'protobufjs/minimal.js';
import { decodeRequest, decodeResponse, decodeStatus, encodeRequest, encodeResponse, encodeStatus } from './messages.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

test('Request encodes with the field numbers of request.proto', () => {
  const b = encodeRequest({ service: 's', method: 'm', payload: Uint8Array.of(1), timeoutNano: 1, metadata: [{ key: 'k', value: 'v' }] });
  // 1:"s" 2:"m" 3:0x01 4:varint 1 5:{1:"k" 2:"v"}
  assert.equal(hex(b), '0a0173' + '12016d' + '1a0101' + '2001' + '2a06' + '0a016b' + '120176');
});

test('Request round trip: large timeout, repeated metadata keys, binary payload', () => {
  const req = {
    service: 'containerd.task.v2.Task',
    method: 'Create',
    payload: Uint8Array.from([0, 255, 10, 13]),
    timeoutNano: 2_999_986_475_123,
    metadata: [
      { key: 'containerd-namespace-ttrpc', value: 'probe' },
      { key: 'x', value: '1' },
      { key: 'x', value: '2' },
    ],
  };
  const got = decodeRequest(encodeRequest(req));
  assert.deepEqual({ ...got, payload: [...got.payload] }, { ...req, payload: [...req.payload] });
});

test('defaults are omitted (proto3) and decode back to defaults', () => {
  assert.equal(encodeRequest({ service: '', method: '', payload: new Uint8Array(0), timeoutNano: 0, metadata: [] }).length, 0);
  assert.equal(encodeResponse({ payload: new Uint8Array(0) }).length, 0);
  const r = decodeResponse(new Uint8Array(0));
  assert.equal(r.status, undefined);
  assert.equal(r.payload.length, 0);
});

test('Response with Status{code,message,details} round trips', () => {
  const res = {
    status: { code: 12, message: 'method Nope', details: [{ typeUrl: 'type.googleapis.com/x.Y', value: Uint8Array.of(8, 1) }] },
    payload: Uint8Array.of(42),
  };
  const got = decodeResponse(encodeResponse(res));
  assert.equal(got.status?.code, 12);
  assert.equal(got.status?.message, 'method Nope');
  assert.equal(got.status?.details[0]?.typeUrl, 'type.googleapis.com/x.Y');
  assert.deepEqual([...got.status!.details[0]!.value], [8, 1]);
  assert.deepEqual([...got.payload], [42]);
  // Status{code=5,message="nf"}: 08 05 12 02 6e 66
  assert.equal(hex(encodeStatus({ code: 5, message: 'nf', details: [] })), '0805' + '12026e66');
  assert.equal(decodeStatus(Uint8Array.from(Buffer.from('0805', 'hex'))).code, 5);
});

test('unknown fields are skipped, negative int32 codes survive', () => {
  const w = protobuf.Writer.create();
  w.uint32((1 << 3) | 2).string('svc');
  w.uint32((15 << 3) | 0).uint64(123456789);
  w.uint32((16 << 3) | 2).bytes(Uint8Array.of(1, 2, 3));
  w.uint32((2 << 3) | 2).string('m');
  const req = decodeRequest(w.finish());
  assert.equal(req.service, 'svc');
  assert.equal(req.method, 'm');
  assert.equal(decodeStatus(encodeStatus({ code: -1, message: '', details: [] })).code, -1);
});

test('truncated input throws', () => {
  const b = encodeRequest({ service: 'service', method: 'm', payload: new Uint8Array(0), timeoutNano: 0, metadata: [] });
  assert.throws(() => decodeRequest(b.subarray(0, 4)));
});
