/**
 * The ttrpc envelope protobufs, hand-coded on protobufjs' Reader/Writer (no .proto loading):
 *
 *   package ttrpc;  (containerd/ttrpc request.proto)
 *   message Request  { string service = 1; string method = 2; bytes payload = 3; int64 timeout_nano = 4;
 *                      repeated KeyValue metadata = 5; }
 *   message Response { google.rpc.Status status = 1; bytes payload = 2; }
 *   message KeyValue { string key = 1; string value = 2; }
 *   google.rpc.Status   { int32 code = 1; string message = 2; repeated google.protobuf.Any details = 3; }
 *   google.protobuf.Any { string type_url = 1; bytes value = 2; }
 *
 * proto3 rules: fields holding their default value are omitted on encode; unknown fields are skipped on decode.
 */
import protobuf from 'protobufjs/minimal.js';

const { Reader, Writer } = protobuf;
type PbReader = InstanceType<typeof Reader>;
type PbWriter = InstanceType<typeof Writer>;

// Wire types.
const VARINT = 0;
const LEN = 2;

/** One metadata entry; a key may repeat (Go's MD is map[string][]string, one KeyValue per value). */
export interface KeyValue {
  key: string;
  value: string;
}

/** google.protobuf.Any. */
export interface AnyMessage {
  typeUrl: string;
  value: Uint8Array;
}

/** google.rpc.Status. */
export interface Status {
  code: number;
  message: string;
  details: AnyMessage[];
}

/** ttrpc.Request. `timeoutNano` is a JS number: exact up to 2^53 ns (~104 days), plenty for a timeout. */
export interface Request {
  service: string;
  method: string;
  payload: Uint8Array;
  timeoutNano: number;
  metadata: KeyValue[];
}

/** ttrpc.Response. An absent status means OK. */
export interface Response {
  status?: Status;
  payload: Uint8Array;
}

const EMPTY = new Uint8Array(0);

function str(w: PbWriter, field: number, v: string): void {
  if (v.length > 0) w.uint32((field << 3) | LEN).string(v);
}
function bytes(w: PbWriter, field: number, v: Uint8Array): void {
  if (v.length > 0) w.uint32((field << 3) | LEN).bytes(v);
}

function writeAny(w: PbWriter, a: AnyMessage): void {
  str(w, 1, a.typeUrl);
  bytes(w, 2, a.value);
}

function writeStatus(w: PbWriter, s: Status): void {
  if (s.code !== 0) w.uint32((1 << 3) | VARINT).int32(s.code);
  str(w, 2, s.message);
  for (const d of s.details) {
    w.uint32((3 << 3) | LEN).fork();
    writeAny(w, d);
    w.ldelim();
  }
}

/** Encodes a Request. */
export function encodeRequest(req: Request): Uint8Array {
  const w = Writer.create();
  str(w, 1, req.service);
  str(w, 2, req.method);
  bytes(w, 3, req.payload);
  if (req.timeoutNano !== 0) w.uint32((4 << 3) | VARINT).int64(Math.trunc(req.timeoutNano));
  for (const kv of req.metadata) {
    w.uint32((5 << 3) | LEN).fork();
    str(w, 1, kv.key);
    str(w, 2, kv.value);
    w.ldelim();
  }
  return w.finish();
}

/** Encodes a Response. */
export function encodeResponse(res: Response): Uint8Array {
  const w = Writer.create();
  if (res.status) {
    w.uint32((1 << 3) | LEN).fork();
    writeStatus(w, res.status);
    w.ldelim();
  }
  bytes(w, 2, res.payload);
  return w.finish();
}

/** Encodes a google.rpc.Status on its own. */
export function encodeStatus(s: Status): Uint8Array {
  const w = Writer.create();
  writeStatus(w, s);
  return w.finish();
}

/** Reads a length prefix and checks it against the buffer (protobufjs' BufferReader.string does not). */
function lengthEnd(r: PbReader): number {
  const len = r.uint32();
  const end = r.pos + len;
  if (end > r.len) throw new RangeError(`ttrpc: truncated message (field of ${len} bytes at ${r.pos}, ${r.len} available)`);
  return end;
}

function readString(r: PbReader): string {
  const end = lengthEnd(r);
  const s = Buffer.from(r.buf.buffer, r.buf.byteOffset + r.pos, end - r.pos).toString('utf8');
  r.pos = end;
  return s;
}

/** Calls `field(fieldNumber, wireType)` for each field of the message `r` is positioned on, up to `end`. */
function fields(r: PbReader, end: number, field: (no: number, wire: number) => boolean): void {
  while (r.pos < end) {
    const tag = r.uint32();
    if (!field(tag >>> 3, tag & 7)) r.skipType(tag & 7);
  }
  if (r.pos !== end) throw new RangeError('ttrpc: malformed message (field overruns its enclosing message)');
}

function readAny(r: PbReader, end: number): AnyMessage {
  const a: AnyMessage = { typeUrl: '', value: EMPTY };
  fields(r, end, (no, wire) => {
    if (no === 1 && wire === LEN) a.typeUrl = readString(r);
    else if (no === 2 && wire === LEN) a.value = r.bytes();
    else return false;
    return true;
  });
  return a;
}

function readStatus(r: PbReader, end: number): Status {
  const s: Status = { code: 0, message: '', details: [] };
  fields(r, end, (no, wire) => {
    if (no === 1 && wire === VARINT) s.code = r.int32();
    else if (no === 2 && wire === LEN) s.message = readString(r);
    else if (no === 3 && wire === LEN) s.details.push(readAny(r, lengthEnd(r)));
    else return false;
    return true;
  });
  return s;
}

function readInt64(r: PbReader): number {
  // protobufjs returns a Long when the `long` package is present, else a number; a Long's `high` is the
  // signed upper 32 bits, `low` the lower 32 bits.
  const v: ReturnType<PbReader['int64']> | number = r.int64();
  return typeof v === 'number' ? v : v.high * 0x1_0000_0000 + (v.low >>> 0);
}

/** Decodes a Request; throws on malformed input. */
export function decodeRequest(buf: Uint8Array): Request {
  const r = Reader.create(buf);
  const req: Request = { service: '', method: '', payload: EMPTY, timeoutNano: 0, metadata: [] };
  fields(r, r.len, (no, wire) => {
    if (no === 1 && wire === LEN) req.service = readString(r);
    else if (no === 2 && wire === LEN) req.method = readString(r);
    else if (no === 3 && wire === LEN) req.payload = r.bytes();
    else if (no === 4 && wire === VARINT) req.timeoutNano = readInt64(r);
    else if (no === 5 && wire === LEN) {
      const end = lengthEnd(r);
      const kv: KeyValue = { key: '', value: '' };
      fields(r, end, (kno, kwire) => {
        if (kno === 1 && kwire === LEN) kv.key = readString(r);
        else if (kno === 2 && kwire === LEN) kv.value = readString(r);
        else return false;
        return true;
      });
      req.metadata.push(kv);
    } else return false;
    return true;
  });
  return req;
}

/** Decodes a Response; throws on malformed input. */
export function decodeResponse(buf: Uint8Array): Response {
  const r = Reader.create(buf);
  const res: Response = { payload: EMPTY };
  fields(r, r.len, (no, wire) => {
    if (no === 1 && wire === LEN) res.status = readStatus(r, lengthEnd(r));
    else if (no === 2 && wire === LEN) res.payload = r.bytes();
    else return false;
    return true;
  });
  return res;
}

/** Decodes a google.rpc.Status on its own. */
export function decodeStatus(buf: Uint8Array): Status {
  const r = Reader.create(buf);
  return readStatus(r, r.len);
}
