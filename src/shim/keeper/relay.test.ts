import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { join } from 'node:path';
import { Code, TtrpcClient, TtrpcError, TtrpcServer } from '../../ttrpc/index.js';
import { encodeFrame, FrameDecoder, MESSAGE_LENGTH_MAX, MessageType, writeHeader } from '../../ttrpc/framing.js';
import { decodeResponse, encodeRequest } from '../../ttrpc/messages.js';
import { keeperTempDir, until } from './testing.js';
import { RelayedConnection, type RelayLimits } from './relay.js';

const TASK = 'containerd.task.v2.Task';
const enc = (s: string): Uint8Array => Buffer.from(s);
const dec = (b: Uint8Array): string => Buffer.from(b).toString();

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** hypercored's side: a TTRPC server on `back`; `Wait` answers when `release` is called. */
async function backServer(back: string) {
  const server = new TtrpcServer();
  const seen: string[] = [];
  let release: (v: string) => void = () => {};
  const released = new Promise<string>((r) => (release = r));
  server.register(TASK, {
    State: (p) => (seen.push(`State ${dec(p)}`), enc(`state of ${dec(p)}`)),
    Wait: async (p) => (seen.push(`Wait ${dec(p)}`), enc(`${dec(p)} exited ${await released}`)),
    Kill: async (p) => (seen.push(`Kill ${dec(p)}`), new Promise<Uint8Array>(() => {})),
    Delete: (p) => (seen.push(`Delete ${dec(p)}`), enc('deleted')),
  });
  await server.listen(back);
  cleanups.push(() => server.close());
  return { server, seen, release };
}

/** The keeper's side: a listener on `front` whose connections are relayed to `back`. */
async function relay(dir: string, limits: Partial<RelayLimits> = {}) {
  const front = join(dir, 'front.sock');
  const back = join(dir, 'back.sock');
  const relays: RelayedConnection[] = [];
  const server = net.createServer((s) => relays.push(new RelayedConnection(s, back, { log: () => {}, onClose: () => {} }, { maxStreams: 256, maxQueuedBytes: 1 << 20, awayWaitMs: 30_000, retryMs: 20, maxWriteBuffer: 1 << 20, ...limits })));
  await new Promise<void>((r) => server.listen(front, () => r()));
  cleanups.push(() => {
    for (const r of relays) r.close();
    server.close();
  });
  return { front, back, relays };
}

function tmp(): string {
  return keeperTempDir(cleanups);
}

async function rejectsWith(p: Promise<unknown>, code: number, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof TtrpcError && err.code === code && message.test(err.message));
}

test('calls are relayed both ways; when hypercored goes, the connection stays, a Wait is sent again to the next one and a half-done Kill is refused', async () => {
  const dir = tmp();
  const r = await relay(dir);
  let b = await backServer(r.back);
  const client = await TtrpcClient.connect(r.front);
  cleanups.push(() => client.close());
  assert.equal(dec(await client.call(TASK, 'State', enc('c1'))), 'state of c1');

  const waited = client.call(TASK, 'Wait', enc('c1'));
  const killed = client.call(TASK, 'Kill', enc('c1'));
  await until('Wait and Kill to reach hypercored', () => b.seen.includes('Wait c1') && b.seen.includes('Kill c1'));
  await b.server.close(); // hypercored dies
  await rejectsWith(killed, Code.UNAVAILABLE, /went away while handling Kill; it may or may not have been carried out/);
  assert.equal(client.closed, false, "containerd's connection stays open");

  // A call made while hypercored is away waits for it.
  const state = client.call(TASK, 'State', enc('c2'));
  b = await backServer(r.back);
  assert.equal(dec(await state), 'state of c2');
  await until('the Wait to be sent again', () => b.seen.includes('Wait c1'));
  b.release('0');
  assert.equal(dec(await waited), 'c1 exited 0');
  assert.deepEqual(b.seen.sort(), ['State c2', 'Wait c1'].sort(), 'the Kill was not made again');
  assert.equal(dec(await client.call(TASK, 'Delete', enc('c1'))), 'deleted');
  assert.equal(r.relays[0]!.inFlight, 0);
});

test('a call that changes something waits for an absent hypercored only so long, then is refused Unavailable', async () => {
  const dir = tmp();
  const r = await relay(dir, { awayWaitMs: 100 });
  let b = await backServer(r.back);
  const client = await TtrpcClient.connect(r.front);
  cleanups.push(() => client.close());
  assert.equal(dec(await client.call(TASK, 'State', enc('x'))), 'state of x');
  await b.server.close();
  await until('the relay to see hypercored gone', () => !r.relays[0]!.connected);
  const wait = client.call(TASK, 'Wait', enc('x'));
  await rejectsWith(client.call(TASK, 'Delete', enc('x')), Code.UNAVAILABLE, /hypercored has been unreachable for 0 s; Delete was not carried out/);
  b = await backServer(r.back);
  b.release('1');
  assert.equal(dec(await wait), 'x exited 1', 'a Wait waits as long as it takes');
});

test('hostile frames from containerd: an oversize frame, a reused stream id and too many calls are refused one by one (the reuse dropped); the connection goes on', async () => {
  const dir = tmp();
  const r = await relay(dir, { maxStreams: 2 });
  const b = await backServer(r.back);
  const raw = net.connect(r.front);
  cleanups.push(() => void raw.destroy());
  await new Promise((res) => raw.once('connect', res));
  const answers = new Map<number, { code: number; message: string; payload: string }>();
  const decoder = new FrameDecoder();
  raw.on('data', (c: Buffer) => {
    for (const e of decoder.push(c)) {
      if (e.kind !== 'frame') continue;
      const res = decodeResponse(e.frame.data);
      answers.set(e.frame.streamId, { code: res.status?.code ?? 0, message: res.status?.message ?? '', payload: dec(res.payload) });
    }
  });
  const request = (id: number, method: string, payload: string) => encodeFrame(id, MessageType.Request, 0, encodeRequest({ service: TASK, method, payload: enc(payload), timeoutNano: 0, metadata: [] }));
  // A header that declares more than 4 MiB, and its bytes: skipped, answered ResourceExhausted.
  const big = Buffer.alloc(10);
  writeHeader(big, 0, { length: MESSAGE_LENGTH_MAX + 1, streamId: 1, type: MessageType.Request, flags: 0 });
  raw.write(big);
  raw.write(Buffer.alloc(MESSAGE_LENGTH_MAX + 1));
  raw.write(request(3, 'Wait', 'a'));
  raw.write(request(3, 'State', 'again'));
  raw.write(request(5, 'Kill', 'b'));
  raw.write(request(7, 'State', 'one too many'));
  await until('the answers', () => answers.has(1) && answers.has(7));
  assert.ok(!answers.has(3), 'the reused stream id did not answer the Wait in flight');
  assert.equal(answers.get(1)!.code, Code.RESOURCE_EXHAUSTED);
  assert.match(answers.get(1)!.message, /exceed maximum message size/);
  assert.equal(answers.get(7)!.code, Code.RESOURCE_EXHAUSTED);
  assert.match(answers.get(7)!.message, /more than 2 calls in flight/);
  b.release('0');
  await until('the Wait answer', () => answers.get(3)?.payload === 'a exited 0');
  assert.ok(!raw.destroyed);
});

test('hostile frames from hypercored: answers to streams containerd never opened, requests and oversize frames are dropped', async () => {
  const dir = tmp();
  const r = await relay(dir);
  // A fake hypercored that answers every request correctly, but first sends junk.
  const back = net.createServer((s) => {
    const decoder = new FrameDecoder();
    s.on('data', (c: Buffer) => {
      for (const e of decoder.push(c)) {
        if (e.kind !== 'frame') continue;
        s.write(encodeFrame(e.frame.streamId + 2, MessageType.Response, 0, new Uint8Array(0)));
        s.write(encodeFrame(2, MessageType.Request, 0, new Uint8Array(0)));
        const big = Buffer.alloc(10);
        writeHeader(big, 0, { length: MESSAGE_LENGTH_MAX + 1, streamId: e.frame.streamId, type: MessageType.Data, flags: 0 });
        s.write(big);
        s.write(Buffer.alloc(MESSAGE_LENGTH_MAX + 1));
        s.write(encodeFrame(e.frame.streamId, MessageType.Response, 0, Buffer.from([0x12, 0x02, 0x6f, 0x6b])));
      }
    });
  });
  await new Promise<void>((res) => back.listen(r.back, () => res()));
  cleanups.push(() => void back.close());
  const client = await TtrpcClient.connect(r.front);
  cleanups.push(() => client.close());
  assert.equal(dec(await client.call(TASK, 'State', enc('x'))), 'ok');
  assert.equal(dec(await client.call(TASK, 'State', enc('y'))), 'ok');
  assert.equal(client.closed, false);
});

test('calls waiting for hypercored are bounded in bytes', async () => {
  const dir = tmp();
  const r = await relay(dir, { maxQueuedBytes: 1000 });
  const client = await TtrpcClient.connect(r.front);
  cleanups.push(() => client.close());
  const first = client.call(TASK, 'State', Buffer.alloc(600));
  await rejectsWith(client.call(TASK, 'State', Buffer.alloc(600)), Code.RESOURCE_EXHAUSTED, /more than 1000 bytes of calls wait for hypercored/);
  const b = await backServer(r.back);
  assert.match(dec(await first), /^state of/);
  assert.equal(b.seen.length, 1);
});
