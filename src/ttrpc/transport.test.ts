import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { TtrpcClient } from './client.js';
import { ConnectionClosedError } from './errors.js';
import { aborted } from './fixtures.js';
import { TtrpcServer } from './server.js';
import type { CallContext } from './server-stream.js';
import { streamPairTransport } from './transport.js';

const SVC = 'hypercore.agent.v1.Agent';
const enc = (s: string): Uint8Array => Buffer.from(s);
const dec = (b: Uint8Array): string => Buffer.from(b).toString();

function agentServer(onSignal?: (s: AbortSignal) => void): TtrpcServer {
  const server = new TtrpcServer();
  server.register(SVC, {
    Ping: async (p) => enc(`pong ${dec(p)}`),
    Hang: (_p, ctx: CallContext) => {
      onSignal?.(ctx.signal);
      return new Promise<Uint8Array>(() => {});
    },
    Lines: {
      streamingClient: true,
      streamingServer: true,
      stream: async (stream) => {
        for await (const m of stream) await stream.send(enc(dec(m).toUpperCase()));
      },
    },
  });
  return server;
}

test('separate readable/writable pair (not a socket): calls work; the readable ending (host gone) ends the connection', async () => {
  const toServer = new PassThrough();
  const toClient = new PassThrough();
  let signal: AbortSignal | undefined;
  const server = agentServer((s) => (signal = s));
  const conn = server.serve(streamPairTransport(toServer, toClient));
  const client = new TtrpcClient(streamPairTransport(toClient, toServer));
  assert.equal(dec(await client.call(SVC, 'Ping', enc('1'))), 'pong 1');
  const pending = client.call(SVC, 'Hang', enc(''));
  while (!signal) await new Promise((r) => setImmediate(r));
  // Like a virtio-serial ReadStream hitting EOF when the host disconnects.
  toServer.end();
  assert.ok((await aborted(signal)) instanceof ConnectionClosedError);
  assert.match((await conn.whenClosed()).message, /closed by peer/);
  toClient.end();
  await assert.rejects(pending, (e: unknown) => e instanceof ConnectionClosedError && e.code === 14);
  await server.close();
});

test('fs.ReadStream/WriteStream pair on FIFOs (the virtio-serial shape): unary + bidi, clean shutdown', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ttrpc-fifo-'));
  try {
    try {
      execFileSync('mkfifo', [join(dir, 'up'), join(dir, 'down')]);
    } catch {
      t.skip('mkfifo not available');
      return;
    }
    const server = agentServer();
    // Each side opens its FIFOs as fs streams, as the guest agent does on /dev/vportNpM.
    const conn = server.serve(
      streamPairTransport(createReadStream(join(dir, 'up')), createWriteStream(join(dir, 'down')), { closeWritable: true }),
    );
    const client = new TtrpcClient(
      streamPairTransport(createReadStream(join(dir, 'down')), createWriteStream(join(dir, 'up')), { closeWritable: true }),
    );
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => client.call(SVC, 'Ping', enc(String(i)))));
    answers.forEach((a, i) => assert.equal(dec(a), `pong ${i}`));
    const s = client.stream(SVC, 'Lines', { streamingClient: true, streamingServer: true });
    await s.send(enc('abc'));
    await s.send(enc('def'));
    await s.closeSend();
    const got: string[] = [];
    for await (const m of s) got.push(dec(m));
    assert.deepEqual(got, ['ABC', 'DEF']);
    client.close();
    // Ending the client's writer gives the server EOF on its ReadStream.
    assert.match((await conn.whenClosed()).message, /closed by peer/);
    await server.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
