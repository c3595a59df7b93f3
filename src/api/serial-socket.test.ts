/**
 * The serial WebSocket against a stand-in serial socket (a unix socket server, as QEMU's chardev
 * is): typed bytes reach it as is, and a client that stops reading while the guest floods its
 * console is cut off instead of holding the guest's output (or the daemon's memory) hostage.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { WebSocket } from 'ws';
import type { VmService } from '../core/vm-service.js';
import { registerProcessSockets } from './websocket-process.js';

let dir: string;
let guest: Server;
let onGuest: (socket: Socket) => void = () => {};
let app: FastifyInstance;
let port: number;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hc-serial-'));
  const path = join(dir, 'serial.sock');
  guest = createServer((s) => onGuest(s));
  await new Promise<void>((r) => guest.listen(path, r));
  const service = { get: () => ({ id: 'vm1', name: 'tty' }), serialConsole: () => path } as unknown as VmService;
  app = Fastify();
  await registerProcessSockets(app, service);
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as { port: number }).port;
});

after(async () => {
  await app.close();
  guest.close();
  rmSync(dir, { recursive: true, force: true });
});

const connect = () => new WebSocket(`ws://127.0.0.1:${port}/v1/vms/tty/serial`);
const guestConnection = () => new Promise<Socket>((resolve) => (onGuest = resolve));

test('typed text and bytes reach the serial socket unchanged; its output comes back as binary', async () => {
  const accepted = guestConnection();
  const ws = connect();
  await new Promise((r) => ws.once('open', r));
  const serial = await accepted;
  const typed: Buffer[] = [];
  serial.on('data', (c: Buffer) => typed.push(c));
  ws.send('ls\n');
  ws.send(Buffer.from([0x03, 0xff]));
  await new Promise<void>((r) => { const t = setInterval(() => Buffer.concat(typed).length >= 5 && (clearInterval(t), r()), 10); });
  assert.deepEqual(Buffer.concat(typed), Buffer.from([0x6c, 0x73, 0x0a, 0x03, 0xff]));
  const [data, binary] = await new Promise<[Buffer, boolean]>((r) => {
    ws.once('message', (d: Buffer, b: boolean) => r([d, b]));
    serial.write('bin  etc\r\n');
  });
  assert.equal(binary, true);
  assert.equal(data.toString(), 'bin  etc\r\n');
  ws.close();
  await new Promise((r) => serial.once('close', r));
});

test('a client that stops reading during a flood is cut off with HC_CLIENT_TOO_SLOW, and the serial socket is let go', async () => {
  const accepted = guestConnection();
  const ws = connect();
  await new Promise((r) => ws.once('open', r));
  const serial = await accepted;
  const messages: { data: Buffer; binary: boolean }[] = [];
  ws.on('message', (data: Buffer, binary: boolean) => messages.push({ data, binary }));
  // The client stops reading: the daemon's queue for it grows once the kernel's buffers are full.
  (ws as unknown as { _socket: Socket })._socket.pause();
  const chunk = Buffer.alloc(64 * 1024, 'x');
  let flooding = true;
  serial.on('close', () => (flooding = false));
  serial.on('error', () => (flooding = false));
  const flood = async () => {
    for (let sent = 0; flooding && sent < 64 * 1024 * 1024; sent += chunk.length) {
      if (!serial.write(chunk)) await new Promise((r) => setTimeout(r, 1));
    }
  };
  await flood();
  assert.equal(flooding, false, 'the daemon closed the serial connection before 64 MiB were sent');
  (ws as unknown as { _socket: Socket })._socket.resume();
  const code = await new Promise<number>((r) => ws.once('close', r));
  assert.equal(code, 1011);
  const last = messages.at(-1)!;
  assert.equal(last.binary, false);
  assert.match(last.data.toString(), /HC_CLIENT_TOO_SLOW.*read too slowly/);
});
