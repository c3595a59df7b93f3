/** The SDK's transport against a hostile or broken daemon: bounded messages, errors by class. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Connection, MAX_MESSAGE_BYTES, ndjson } from './connection.js';
import { DaemonUnavailableError, errorFromBody, HypercoreApiError, InternalError, VmNotFoundError } from './errors.js';

async function* chunks(...parts: string[]): AsyncGenerator<Buffer> {
  for (const p of parts) yield Buffer.from(p);
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

test('NDJSON lines split across chunks are joined; an error line ends the stream with its class', async () => {
  assert.deepEqual(await collect(ndjson(chunks('{"a":', '1}\n{"a":2}\n', '\n{"a"', ':3}'))), [{ a: 1 }, { a: 2 }, { a: 3 }]);
  const seen: unknown[] = [];
  await assert.rejects(
    (async () => {
      for await (const m of ndjson(chunks('{"phase":"downloading"}\n{"error":{"code":"HC_VM_NOT_FOUND","message":"no VM x"}}\n{"phase":"never"}\n'))) seen.push(m);
    })(),
    (err: unknown) => err instanceof VmNotFoundError && err.message === 'no VM x',
  );
  assert.deepEqual(seen, [{ phase: 'downloading' }]);
});

test('a line that never ends is refused once it passes the bound, without reading the rest', async () => {
  let sent = 0;
  const endless = (async function* () {
    for (;;) {
      sent += 1;
      yield Buffer.alloc(1024 * 1024, 0x61);
    }
  })();
  await assert.rejects(collect(ndjson(endless)), /larger than 16777216 bytes/);
  assert.ok(sent <= MAX_MESSAGE_BYTES / (1024 * 1024) + 1, `read ${sent} MiB`);
});

test('an error body that is not one (a proxy page, garbage, an unknown code) is an InternalError naming the status', () => {
  for (const body of [undefined, 'oops', { error: { code: 'HC_FROM_THE_FUTURE', message: 'x' } }, { error: 42 }]) {
    const e = errorFromBody(502, body);
    assert.ok(e instanceof InternalError && e instanceof HypercoreApiError);
    assert.equal(e.status, 502);
    assert.match(e.message, /HTTP 502/);
  }
});

test('over a unix socket: a JSON answer past the bound is refused; a non-JSON error page is an InternalError; no daemon is DaemonUnavailableError', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hc-sdk-'));
  const socketPath = join(dir, 'api.sock');
  const server: Server = createServer((req, res) => {
    if (req.url === '/huge') {
      res.writeHead(200, { 'content-type': 'application/json' });
      const block = Buffer.alloc(1024 * 1024, 0x20);
      let n = 0;
      const more = (): void => {
        while (n < 64 && !res.destroyed) {
          n += 1;
          if (!res.write(block)) return void res.once('drain', more);
        }
        res.end();
      };
      res.on('error', () => undefined);
      more();
    } else {
      res.writeHead(500, { 'content-type': 'text/html' }).end('<h1>bad gateway</h1>');
    }
  });
  await new Promise<void>((r) => server.listen(socketPath, r));
  const connection = new Connection({ socketPath });
  try {
    await assert.rejects(connection.call('GET', '/huge'), /larger than/);
    await assert.rejects(connection.call('GET', '/page'), (e: unknown) => e instanceof InternalError && e.status === 500);
    const gone = new Connection({ socketPath: join(dir, 'nothing.sock') });
    await assert.rejects(gone.call('GET', '/v1/vms'), (e: unknown) => e instanceof DaemonUnavailableError && /nothing\.sock/.test(e.message));
    await gone.close();
  } finally {
    await connection.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a WebSocket comes paused: what the daemon sends at once waits for the handlers, however late they come', async () => {
  const { WebSocketServer } = await import('ws');
  const dir = mkdtempSync(join(tmpdir(), 'hc-sdk-'));
  const socketPath = join(dir, 'api.sock');
  const server = createServer();
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.send('{"error":{"code":"HC_VM_STATE_CONFLICT","message":"the serial console is in use by another client"}}'));
  await new Promise<void>((r) => server.listen(socketPath, r));
  const connection = new Connection({ socketPath });
  try {
    const socket = await connection.openWebSocket('/v1/vms/x/serial');
    await new Promise((r) => setTimeout(r, 100));
    const first = new Promise<string>((resolve) => socket.once('message', (data: Buffer) => resolve(data.toString('utf8'))));
    socket.resume();
    assert.match(await first, /in use by another client/);
    socket.close();
  } finally {
    await connection.close();
    for (const client of wss.clients) client.terminate();
    wss.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
});
