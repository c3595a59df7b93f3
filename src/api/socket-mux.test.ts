/**
 * socket-mux: classify() tells HTTP/1.1 from the HTTP/2 (gRPC) preface, and the multiplexed socket
 * routes connections correctly however the first bytes are split.
 */
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Vm } from '../core/vm.js';
import { loadVmServiceDefinition } from './proto.js';
import { classify } from './socket-mux.js';
import { TestServer } from './testing-server.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('classify: an HTTP/1.1 request line is http', () => {
  for (const line of ['GET /v1/vms HTTP/1.1\r\n', 'POST /v1/vms HTTP/1.1\r\n', 'DELETE /v1/vms/a HTTP/1.1\r\n', 'PUT / HTTP/1.1\r\n']) {
    assert.equal(classify(Buffer.from(line)), 'http', line);
  }
});

test('classify: the first byte that differs from the preface decides http', () => {
  assert.equal(classify(Buffer.from('G')), 'http');
  assert.equal(classify(Buffer.from('PO')), 'http');
  assert.equal(classify(Buffer.from('PRI * HTTP/1.1\r\n')), 'http');
  const almost = Buffer.from(PREFACE);
  almost[PREFACE.length - 1] = 0x41;
  assert.equal(classify(almost), 'http', 'a wrong last byte of a full-length preface');
});

test('classify: the full HTTP/2 preface is grpc, with or without the frames after it', () => {
  assert.equal(classify(PREFACE), 'grpc');
  assert.equal(classify(Buffer.concat([PREFACE, Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])])), 'grpc');
});

test('classify: every strict prefix of the preface (and no bytes at all) is still undecided', () => {
  assert.equal(classify(Buffer.alloc(0)), undefined);
  for (let n = 1; n < PREFACE.length; n++) assert.equal(classify(PREFACE.subarray(0, n)), undefined, `${n} bytes`);
  assert.equal(classify(Buffer.from('P')), undefined, "'P' may start PUT, POST or the preface");
});

let server: TestServer;
const extra: { close(): void }[] = [];

before(async () => {
  server = await TestServer.start();
});
afterEach(() => {
  for (const x of extra.splice(0)) x.close();
});
after(async () => {
  await server.close();
});

/**
 * Sends `data` over a raw connection to the public socket (one byte per write, `byteDelayMs` apart,
 * or in one write without it) and reads until the server closes.
 */
async function rawExchange(data: string, byteDelayMs?: number): Promise<string> {
  const socket = connect(server.socket);
  extra.push({ close: () => socket.destroy() });
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  socket.on('error', () => undefined); // the server may close first (e.g. after a 400): the response is what counts
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  if (byteDelayMs === undefined) socket.write(data, 'latin1');
  else for (const byte of Buffer.from(data, 'latin1')) {
    if (socket.destroyed) break;
    socket.write(Buffer.from([byte]));
    await sleep(byteDelayMs);
  }
  await closed;
  return received;
}

test('an HTTP request arriving one byte at a time is answered', async () => {
  const res = await rawExchange('GET /v1/vms HTTP/1.1\r\nHost: hypercore\r\nConnection: close\r\n\r\n', 1);
  assert.match(res, /^HTTP\/1\.1 200 OK\r\n/);
  assert.ok(res.endsWith('\r\n\r\n{"vms":[]}'), res);
});

test('two pipelined HTTP requests on one connection are both answered', async () => {
  const res = await rawExchange('GET /v1/vms HTTP/1.1\r\nHost: a\r\n\r\nGET /v1/nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
  const statuses = [...res.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
  assert.deepEqual(statuses, ['200', '404']);
  assert.ok(res.includes('"code":"HC_NOT_FOUND"'));
});

/**
 * A unix-socket proxy to the public socket that forwards the first `dribble` bytes a client sends
 * one byte per write, `delayMs` apart, so the multiplexer sees the HTTP/2 preface split in pieces.
 */
async function dribblingProxy(path: string, dribble: number, delayMs: number): Promise<{ singleByteWrites: () => number }> {
  let singles = 0;
  const sockets = new Set<Socket>();
  const proxy: Server = createServer((client) => {
    const upstream = connect(server.socket);
    sockets.add(client).add(upstream);
    let remaining = dribble;
    let queue = Promise.resolve();
    client.on('data', (chunk: Buffer) => {
      client.pause();
      queue = queue.then(async () => {
        const head = chunk.subarray(0, remaining);
        remaining -= head.length;
        for (const byte of head) {
          upstream.write(Buffer.from([byte]));
          singles++;
          await sleep(delayMs);
        }
        if (head.length < chunk.length) upstream.write(chunk.subarray(head.length));
        client.resume();
      });
    });
    upstream.pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', close).on('error', close);
    upstream.on('close', close).on('error', close);
  });
  await new Promise<void>((resolve) => proxy.listen(path, () => resolve()));
  extra.push({ close: () => { for (const s of sockets) s.destroy(); proxy.close(); } });
  return { singleByteWrites: () => singles };
}

test('a gRPC call works when the HTTP/2 preface reaches the socket one byte at a time', async () => {
  const proxySocket = join(server.dir, 'dribble.sock');
  const proxy = await dribblingProxy(proxySocket, PREFACE.length, 3);
  const Client = loadVmServiceDefinition();
  const client = new Client(`unix:${proxySocket}`, grpc.credentials.createInsecure());
  extra.push(client);
  const call = <T>(method: string, req: object) =>
    new Promise<T>((resolve, reject) => {
      const fn = (client as unknown as Record<string, (r: object, cb: (e: grpc.ServiceError | null, v?: unknown) => void) => void>)[method]!;
      fn.call(client, req, (err, res) => (err ? reject(err) : resolve(res as T)));
    });

  const created = await call<Vm>('CreateVm', { spec: server.spec('dribbled') });
  assert.equal(proxy.singleByteWrites(), PREFACE.length, 'the preface was sent byte by byte');
  assert.equal(created.state, 'running');
  assert.deepEqual(await call<Vm>('GetVm', { id: 'dribbled' }), created);
  assert.deepEqual(server.service.get('dribbled'), created);
  await server.service.delete(created.id, { force: true });
});

test('a connection that closes in the middle of the preface does not disturb the server', async () => {
  const socket = connect(server.socket);
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.end(PREFACE.subarray(0, 10));
  await new Promise<void>((resolve) => socket.on('close', () => resolve()));
  assert.equal((await server.http('GET', '/v1/vms')).text, '{"vms":[]}');
  assert.deepEqual((await server.grpc<{ vms?: Vm[] }>('ListVms', {})).vms ?? [], []);
});

test('a near-preface that turns out not to be HTTP/2 goes to the HTTP server and gets a 400', async () => {
  const res = await rawExchange('PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n');
  assert.match(res, /^HTTP\/1\.1 400 /);
});
