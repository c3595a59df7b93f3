import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionClosedError, TtrpcError } from './errors.js';
import { encodeFrame, MESSAGE_LENGTH_MAX, MessageType, writeHeader } from './framing.js';
import { decodeResponse, encodeRequest } from './messages.js';
import { TtrpcServer } from './server.js';
import type { CallContext } from './server-stream.js';
import { aborted, rawConnect, sleep, socketFixture, type Fixture } from './fixtures.js';

const SVC = 'hypercore.test.v1.Test';
const enc = (s: string): Uint8Array => Buffer.from(s);
const dec = (b: Uint8Array): string => Buffer.from(b).toString();

/** Asserts that `p` rejects with a TtrpcError of `code` (and message when given). */
async function rejectsWith(p: Promise<unknown>, code: number, message?: string | RegExp): Promise<TtrpcError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof TtrpcError, `not a TtrpcError: ${String(err)}`);
    assert.equal(err.code, code, `code ${err.code} (${err.message})`);
    if (typeof message === 'string') assert.equal(err.message, message);
    else if (message) assert.match(err.message, message);
    return err;
  }
  assert.fail('expected a rejection');
}

describe('unary calls over a unix socket', () => {
  let fx: Fixture;
  const seen: { signal?: AbortSignal; ctx?: CallContext } = {};
  let late: () => void = () => {};

  before(async () => {
    const server = new TtrpcServer();
    server.register(SVC, {
      Echo: async (p, ctx) => {
        seen.ctx = ctx;
        return p;
      },
      Double: async (p, ctx) => {
        await sleep(Math.random() * 40);
        return enc(`${Number(dec(p)) * 2}@${ctx.streamId}`);
      },
      Hang: async (_p, ctx) => {
        seen.signal = ctx.signal;
        await aborted(ctx.signal);
        throw ctx.signal.reason;
      },
      Late: (_p, ctx) => new Promise<Uint8Array>((resolve) => {
        seen.signal = ctx.signal;
        late = () => resolve(enc('late'));
      }),
      Fail: async (p) => {
        const kind = dec(p);
        if (kind === 'coded') throw Object.assign(new Error('no such vm'), { code: 5 });
        if (kind === 'ttrpc') throw new TtrpcError(9, 'not running');
        if (kind === 'big') throw Object.assign(new Error('weird'), { code: 99 });
        if (kind === 'zero') throw Object.assign(new Error('zero'), { code: 0 });
        if (kind === 'string') throw Object.assign(new Error('enoent'), { code: 'ENOENT' });
        if (kind === 'dom') throw new DOMException('dom', 'NotFoundError');
        if (kind === 'nothing') return undefined as unknown as Uint8Array;
        throw new Error('plain');
      },
      Size: async (p) => Buffer.alloc(Number(dec(p)), 7),
    });
    fx = await socketFixture(server);
  });
  after(() => fx.cleanup());

  test('echo with metadata and timeout reaches the handler', async () => {
    const out = await fx.client.call(SVC, 'Echo', enc('hi'), { metadata: { a: 'b', x: ['1', '2'] }, timeoutMs: 5000 });
    assert.equal(dec(out), 'hi');
    assert.deepEqual({ ...seen.ctx!.metadata }, { a: ['b'], x: ['1', '2'] });
    assert.equal(seen.ctx!.service, SVC);
    assert.equal(seen.ctx!.method, 'Echo');
    assert.ok(seen.ctx!.deadline! > Date.now() + 4000 && seen.ctx!.deadline! <= Date.now() + 5000);
  });

  test('100 concurrent calls on one connection, answered out of order, each gets its own answer', async () => {
    const order: number[] = [];
    const calls = Array.from({ length: 100 }, (_, i) =>
      fx.client.call(SVC, 'Double', enc(String(i))).then((r) => {
        order.push(i);
        return dec(r);
      }),
    );
    const results = await Promise.all(calls);
    results.forEach((r, i) => assert.equal(r.split('@')[0], String(i * 2)));
    const ids = results.map((r) => Number(r.split('@')[1]));
    assert.ok(ids.every((id) => id % 2 === 1), 'odd stream ids');
    assert.equal(new Set(ids).size, 100, 'one stream id per call');
    assert.notDeepEqual(order, [...order].sort((a, b) => a - b), 'completions were reordered');
    assert.equal(fx.client.pending, 0);
  });

  test('timeout: client rejects DEADLINE_EXCEEDED and the handler signal aborts', async () => {
    const t0 = Date.now();
    await rejectsWith(fx.client.call(SVC, 'Hang', enc(''), { timeoutMs: 150 }), 4, 'context deadline exceeded');
    assert.ok(Date.now() - t0 >= 140);
    const reason = await aborted(seen.signal!);
    assert.ok(reason instanceof TtrpcError && reason.code === 4, 'server side deadline from timeout_nano');
    assert.equal(fx.client.pending, 0);
  });

  test('cancel via AbortSignal rejects CANCELED; the late answer is dropped; the connection still works', async () => {
    const ac = new AbortController();
    const p = fx.client.call(SVC, 'Late', enc(''), { signal: ac.signal });
    await sleep(30);
    ac.abort();
    await rejectsWith(p, 1, 'context canceled');
    late();
    await sleep(20);
    assert.equal(dec(await fx.client.call(SVC, 'Echo', enc('still ok'))), 'still ok');
    await rejectsWith(fx.client.call(SVC, 'Echo', enc(''), { signal: AbortSignal.abort() }), 1);
  });

  test('unknown service / method → UNIMPLEMENTED (12) with Go wording', async () => {
    await rejectsWith(fx.client.call('no.Such', 'Echo', enc('')), 12, 'service no.Such');
    await rejectsWith(fx.client.call(SVC, 'Nope', enc('')), 12, 'method Nope');
    await rejectsWith(fx.client.call(SVC, 'toString', enc('')), 12, 'method toString');
  });

  test('handler errors map to status codes', async () => {
    const cases: [string, number, string][] = [
      ['coded', 5, 'no such vm'],
      ['ttrpc', 9, 'not running'],
      ['big', 2, 'weird'],
      ['zero', 2, 'zero'],
      ['string', 2, 'enoent'],
      ['dom', 2, 'dom'],
      ['plain', 2, 'plain'],
      ['nothing', 13, 'ttrpc: handler returned no payload'],
    ];
    for (const [kind, code, message] of cases) await rejectsWith(fx.client.call(SVC, 'Fail', enc(kind)), code, message);
  });

  test('a request frame of exactly 4 MiB works; one byte more fails locally and cleanly', async () => {
    const overhead = encodeRequest({ service: SVC, method: 'Echo', payload: Buffer.alloc(MESSAGE_LENGTH_MAX - 100), timeoutNano: 0, metadata: [] }).length - (MESSAGE_LENGTH_MAX - 100);
    const fits = MESSAGE_LENGTH_MAX - overhead;
    const got = await fx.client.call(SVC, 'Echo', Buffer.alloc(fits, 1));
    assert.equal(got.length, fits);
    await rejectsWith(fx.client.call(SVC, 'Echo', Buffer.alloc(fits + 1)), 8, /exceed maximum message size of 4194304/);
    await rejectsWith(fx.client.call(SVC, 'Echo', Buffer.alloc(MESSAGE_LENGTH_MAX + 1)), 8);
    assert.equal(dec(await fx.client.call(SVC, 'Echo', enc('after'))), 'after');
  });

  test('responses: a 4 MiB frame works; larger ones → RESOURCE_EXHAUSTED and the connection survives', async () => {
    // Response{payload}: 1 tag byte + 4 varint length bytes, so MAX-5 payload makes a frame of exactly 4 MiB.
    assert.equal((await fx.client.call(SVC, 'Size', enc(String(MESSAGE_LENGTH_MAX - 5)))).length, MESSAGE_LENGTH_MAX - 5);
    await rejectsWith(fx.client.call(SVC, 'Size', enc(String(MESSAGE_LENGTH_MAX - 1))), 8, /exceed maximum message size/);
    await rejectsWith(fx.client.call(SVC, 'Size', enc(String(MESSAGE_LENGTH_MAX + 1))), 8);
    assert.equal(dec(await fx.client.call(SVC, 'Echo', enc('still'))), 'still');
  });

  test('raw: oversized frame is discarded and answered, ids are checked, the connection survives', async () => {
    const raw = await rawConnect(fx.path);
    try {
      const big = Buffer.alloc(10 + MESSAGE_LENGTH_MAX + 1);
      writeHeader(big, 0, { length: MESSAGE_LENGTH_MAX + 1, streamId: 1, type: MessageType.Request, flags: 0 });
      raw.write(big);
      const req = (id: number): Buffer => encodeFrame(id, MessageType.Request, 0, encodeRequest({ service: SVC, method: 'Echo', payload: enc(`#${id}`), timeoutNano: 0, metadata: [] }));
      raw.write(Buffer.concat([req(3), req(2), req(3), req(5)]));
      const statusOf = async (): Promise<[number, number, string]> => {
        const ev = await raw.next();
        assert.equal(ev.kind, 'frame');
        if (ev.kind !== 'frame') throw new Error('unreachable');
        const res = decodeResponse(ev.frame.data);
        return [ev.frame.streamId, res.status?.code ?? 0, res.status?.message ?? dec(res.payload)];
      };
      const got: [number, number, string][] = [];
      for (let i = 0; i < 5; i++) got.push(await statusOf());
      got.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      assert.deepEqual(got, [
        [1, 8, `message length ${MESSAGE_LENGTH_MAX + 1} exceed maximum message size of ${MESSAGE_LENGTH_MAX}`],
        [2, 3, 'StreamID must be odd for client initiated streams'],
        [3, 0, '#3'],
        [3, 3, 'StreamID cannot be re-used and must increment'],
        [5, 0, '#5'],
      ]);
    } finally {
      raw.close();
    }
  });
});

describe('connection loss', () => {
  test('server closing mid-call rejects pending calls and aborts handlers; later calls fail fast', async () => {
    let signal: AbortSignal | undefined;
    const server = new TtrpcServer();
    server.register(SVC, {
      Hang: (_p, ctx: CallContext) => {
        signal = ctx.signal;
        return new Promise<Uint8Array>(() => {});
      },
    });
    const fx = await socketFixture(server);
    try {
      const pending = [fx.client.call(SVC, 'Hang', enc('')), fx.client.call(SVC, 'Hang', enc(''))];
      await sleep(50);
      assert.equal(fx.server.connectionCount, 1);
      await fx.server.close();
      for (const p of pending) {
        const err = await rejectsWith(p, 14, /connection closed by peer/);
        assert.ok(err instanceof ConnectionClosedError);
      }
      assert.ok(signal?.aborted);
      assert.ok(fx.client.closed);
      await rejectsWith(fx.client.call(SVC, 'Hang', enc('')), 14);
      assert.match((await fx.client.whenClosed()).message, /closed by peer/);
    } finally {
      await fx.cleanup();
    }
  });

  test('client close aborts the server handler and rejects its own pending calls', async () => {
    let signal: AbortSignal | undefined;
    const server = new TtrpcServer();
    server.register(SVC, {
      Hang: (_p, ctx: CallContext) => {
        signal = ctx.signal;
        return new Promise<Uint8Array>(() => {});
      },
    });
    const fx = await socketFixture(server);
    try {
      const p = fx.client.call(SVC, 'Hang', enc(''));
      await sleep(50);
      fx.client.close();
      await rejectsWith(p, 14, 'ttrpc: client closed');
      const reason = await aborted(signal!);
      assert.ok(reason instanceof ConnectionClosedError);
    } finally {
      await fx.cleanup();
    }
  });
});
