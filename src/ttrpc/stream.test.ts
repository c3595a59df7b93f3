import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClientStream } from './client-stream.js';
import { ConnectionClosedError, TtrpcError } from './errors.js';
import { TtrpcServer } from './server.js';
import type { CallContext } from './server-stream.js';
import { aborted, sleep, socketFixture, type Fixture } from './fixtures.js';

const SVC = 'hypercore.test.v1.Streams';
const enc = (s: string): Uint8Array => Buffer.from(s);
const dec = (b: Uint8Array): string => Buffer.from(b).toString();

async function collect(s: AsyncIterable<Uint8Array>): Promise<string[]> {
  const out: string[] = [];
  for await (const m of s) out.push(dec(m));
  return out;
}

describe('streams', () => {
  let fx: Fixture;
  let lastSignal: AbortSignal | undefined;

  before(async () => {
    const server = new TtrpcServer();
    server.register(SVC, {
      // Server streaming: request payload n → messages "0".."n-1".
      Count: {
        streamingClient: false,
        streamingServer: true,
        stream: async (stream) => {
          const n = Number(dec((await stream.recv())!));
          for (let i = 0; i < n; i++) await stream.send(enc(String(i)));
          assert.equal(await stream.recv(), undefined, 'a non-streaming client sends exactly one message');
        },
      },
      // Client streaming: sum of the numbers sent, returned as the Response payload.
      Sum: {
        streamingClient: true,
        streamingServer: false,
        stream: async (stream) => {
          let sum = 0;
          for await (const m of stream) sum += Number(dec(m));
          return enc(String(sum));
        },
      },
      // Bidi: echoes each message tagged with the stream id, after a random delay.
      Echo: {
        streamingClient: true,
        streamingServer: true,
        stream: async (stream, ctx: CallContext) => {
          for await (const m of stream) {
            await sleep(Math.random() * 5);
            await stream.send(enc(`${ctx.streamId}:${dec(m)}`));
          }
          return enc('bye');
        },
      },
      // Sends two messages then fails.
      Broken: {
        streamingClient: false,
        streamingServer: true,
        stream: async (stream) => {
          await stream.send(enc('a'));
          await stream.send(enc('b'));
          throw Object.assign(new Error('disk on fire'), { code: 15 });
        },
      },
      // Waits for its signal (timeout / connection loss).
      Wait: {
        streamingClient: true,
        streamingServer: true,
        stream: async (_stream, ctx) => {
          lastSignal = ctx.signal;
          await aborted(ctx.signal);
          throw ctx.signal.reason;
        },
      },
    });
    fx = await socketFixture(server);
  });
  after(() => fx.cleanup());

  test('server streaming: messages in order, then a clean end', async () => {
    const s = fx.client.stream(SVC, 'Count', { streamingClient: false, streamingServer: true, payload: enc('5') });
    assert.deepEqual(await collect(s), ['0', '1', '2', '3', '4']);
    assert.equal(await s.recv(), undefined);
    assert.equal(fx.client.pending, 0);
    assert.deepEqual(await collect(fx.client.stream(SVC, 'Count', { streamingClient: false, streamingServer: true, payload: enc('0') })), []);
  });

  test('client streaming: send, closeSend, one result message', async () => {
    const s = fx.client.stream(SVC, 'Sum', { streamingClient: true, streamingServer: false });
    for (const n of [1, 2, 3, 4]) await s.send(enc(String(n)));
    await s.closeSend();
    await assert.rejects(s.send(enc('5')), (e: unknown) => e instanceof TtrpcError && e.code === 9);
    assert.deepEqual(await collect(s), ['10']);
  });

  test('two bidi streams at once, interleaved, each gets only its own messages', async () => {
    const a = fx.client.stream(SVC, 'Echo', { streamingClient: true, streamingServer: true });
    const b = fx.client.stream(SVC, 'Echo', { streamingClient: true, streamingServer: true });
    assert.notEqual(a.id, b.id);
    const got = { a: collect(a), b: collect(b) };
    for (let i = 0; i < 20; i++) {
      await a.send(enc(`a${i}`));
      await b.send(enc(`b${i}`));
    }
    await Promise.all([a.closeSend(), b.closeSend()]);
    const [ra, rb] = await Promise.all([got.a, got.b]);
    assert.deepEqual(ra, [...Array.from({ length: 20 }, (_, i) => `${a.id}:a${i}`), 'bye']);
    assert.deepEqual(rb, [...Array.from({ length: 20 }, (_, i) => `${b.id}:b${i}`), 'bye']);
  });

  test('handler error: buffered messages first, then the status', async () => {
    const s = fx.client.stream(SVC, 'Broken', { streamingClient: false, streamingServer: true });
    assert.equal(dec((await s.recv())!), 'a');
    assert.equal(dec((await s.recv())!), 'b');
    await assert.rejects(s.recv(), (e: unknown) => e instanceof TtrpcError && e.code === 15 && e.message === 'disk on fire');
  });

  test('stream timeout: client DEADLINE_EXCEEDED, server signal aborts', async () => {
    const s = fx.client.stream(SVC, 'Wait', { streamingClient: true, streamingServer: true, timeoutMs: 100 });
    await assert.rejects(collect(s), (e: unknown) => e instanceof TtrpcError && e.code === 4);
    const reason = await aborted(lastSignal!);
    assert.ok(reason instanceof TtrpcError && reason.code === 4);
    await assert.rejects(s.send(enc('x')), (e: unknown) => e instanceof TtrpcError && e.code === 4);
  });

  test('stream cancel (method and AbortSignal) → CANCELED locally', async () => {
    const s1 = fx.client.stream(SVC, 'Wait', { streamingClient: true, streamingServer: true });
    await s1.send(enc('x'));
    s1.cancel();
    await assert.rejects(s1.recv(), (e: unknown) => e instanceof TtrpcError && e.code === 1);
    const ac = new AbortController();
    const s2: ClientStream = fx.client.stream(SVC, 'Wait', { streamingClient: true, streamingServer: true, signal: ac.signal });
    setTimeout(() => ac.abort(), 20);
    await assert.rejects(collect(s2), (e: unknown) => e instanceof TtrpcError && e.code === 1);
    assert.equal(fx.client.pending, 0);
  });

  test('sending on a non-streaming client is refused', async () => {
    const s = fx.client.stream(SVC, 'Count', { streamingClient: false, streamingServer: true, payload: enc('1') });
    await assert.rejects(s.send(enc('x')), /non-streaming client/);
    assert.deepEqual(await collect(s), ['0']);
  });

  test('unknown streaming method → UNIMPLEMENTED through the handle', async () => {
    const s = fx.client.stream(SVC, 'Nope', { streamingClient: true, streamingServer: true });
    await assert.rejects(s.recv(), (e: unknown) => e instanceof TtrpcError && e.code === 12 && e.message === 'method Nope');
  });

  test('a server that floods a stream nobody reads fails that stream only; the connection stays usable', async () => {
    let floodSent = 0;
    let emptiesSent = 0;
    const server = new TtrpcServer();
    server.register(SVC, {
      // Sends 1 KiB messages without end (a hostile or runaway peer: ttrpc has no flow control).
      Flood: {
        streamingClient: false,
        streamingServer: true,
        stream: async (stream, ctx) => {
          const kib = Buffer.alloc(1024, 0x61);
          while (!ctx.signal.aborted && !stream.finished) {
            await stream.send(kib);
            floodSent += kib.length;
          }
        },
      },
      Ping: () => enc('pong'),
      // Many empty messages: each costs a little even without bytes.
      Empty: {
        streamingClient: false,
        streamingServer: true,
        stream: async (stream, ctx) => {
          while (!ctx.signal.aborted && !stream.finished) {
            await stream.send(new Uint8Array(0));
            emptiesSent++;
          }
        },
      },
    });
    const local = await socketFixture(server);
    try {
      const s = local.client.stream(SVC, 'Flood', { streamingClient: false, streamingServer: true, maxBufferedBytes: 256 * 1024 });
      // Nobody reads `s` while the server sends 2 MiB (more than socket buffers hold, so the client has
      // seen well over its 256 KiB); then the reader finds the bounded error, not 256 KiB+ of data.
      for (const deadline = Date.now() + 20_000; floodSent < 2 * 1024 * 1024 && Date.now() < deadline; ) await sleep(20);
      await assert.rejects(s.recv(), (e: unknown) => e instanceof TtrpcError && e.code === 8 && /more than 262144 bytes ahead of its reader/.test(e.message));
      assert.equal(dec(await local.client.call(SVC, 'Ping', new Uint8Array(0))), 'pong');
      const e = local.client.stream(SVC, 'Empty', { streamingClient: false, streamingServer: true, maxBufferedBytes: 64 * 1024 });
      // Each message counts at least 64 bytes against the 64 KiB bound: 20000 are far past it.
      for (const deadline = Date.now() + 20_000; emptiesSent < 20_000 && Date.now() < deadline; ) await sleep(20);
      await assert.rejects(e.recv(), (err: unknown) => err instanceof TtrpcError && err.code === 8);
    } finally {
      await local.cleanup();
    }
  });

  test('connection loss mid-stream fails both ends', async () => {
    const server = new TtrpcServer();
    let serverRecv: Promise<unknown> | undefined;
    server.register(SVC, {
      Hold: {
        streamingClient: true,
        streamingServer: true,
        stream: async (stream) => {
          serverRecv = stream.recv().then(() => 'ended', (e: unknown) => e);
          await stream.send(enc('hello'));
          await serverRecv;
        },
      },
    });
    const local = await socketFixture(server);
    try {
      const s = local.client.stream(SVC, 'Hold', { streamingClient: true, streamingServer: true });
      assert.equal(dec((await s.recv())!), 'hello');
      await local.server.close();
      await assert.rejects(s.recv(), (e: unknown) => e instanceof ConnectionClosedError && e.code === 14);
      assert.ok((await serverRecv) instanceof ConnectionClosedError, 'server-side recv fails too');
      await assert.rejects(s.send(enc('x')), ConnectionClosedError);
    } finally {
      await local.cleanup();
    }
  });
});
