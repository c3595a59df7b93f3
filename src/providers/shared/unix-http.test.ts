import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiTransportError, UnixHttpClient } from './unix-http.js';

async function withServer(handler: Parameters<typeof createServer>[1], fn: (socket: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'hc-uhttp-'));
  const socket = join(dir, 'api.sock');
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(socket, r));
  try {
    await fn(socket);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  }
}

test('sends JSON with a Host header and parses the JSON reply; 204 has no body', async () => {
  const seen: { method?: string; url?: string; host?: string; body: string }[] = [];
  await withServer(
    (req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({ method: req.method, url: req.url, host: req.headers.host, body });
        if (req.method === 'GET') res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"firecracker_version":"1.10.1"}');
        else res.writeHead(204).end();
      });
    },
    async (socket) => {
      const api = new UnixHttpClient(socket);
      assert.deepEqual((await api.call('GET', '/version')).body, { firecracker_version: '1.10.1' });
      const put = await api.call('PUT', '/vm', { state: 'Paused' });
      assert.equal(put.status, 204);
      assert.equal(put.body, undefined);
      assert.deepEqual(seen[1], { method: 'PUT', url: '/vm', host: 'localhost', body: '{"state":"Paused"}' });
    },
  );
});

test('a reply larger than the bound is refused, not buffered', async () => {
  await withServer(
    (_req, res) => {
      res.writeHead(200);
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      for (let i = 0; i < 64; i++) res.write(chunk);
      res.end();
    },
    async (socket) => {
      const api = new UnixHttpClient(socket, { maxReplyBytes: 128 * 1024 });
      await assert.rejects(api.call('GET', '/'), (err: unknown) => err instanceof ApiTransportError && err.reason === 'too-large');
    },
  );
});

test('a VMM that never answers times out; a missing socket is a connect error', async () => {
  await withServer(
    () => undefined,
    async (socket) => {
      const api = new UnixHttpClient(socket, { timeoutMs: 200 });
      await assert.rejects(api.call('GET', '/'), (err: unknown) => err instanceof ApiTransportError && err.reason === 'timeout');
    },
  );
  await assert.rejects(new UnixHttpClient('/nonexistent/api.sock').call('GET', '/'), (err: unknown) => err instanceof ApiTransportError && err.reason === 'connect');
});
