/** The shim binary's calls to hypercored: a restarting hypercored still gets `delete`. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { DaemonCallError, postJson, postJsonOnceUp } from './daemon-client.js';

const dir = mkdtempSync(join(tmpdir(), 'hc-shim-client-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function daemonAfter(socket: string, ms: number): Promise<http.Server> {
  return new Promise((resolve) => {
    setTimeout(() => {
      const server = http.createServer((req, res) => {
        req.resume();
        req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ pid: 7, exitStatus: 137 })));
      });
      server.listen(socket, () => resolve(server));
    }, ms);
  });
}

test('a hypercored that comes back within the time allowed gets the call; one that does not: a clear error naming the socket', async () => {
  const socket = join(dir, 'late.sock');
  const up = daemonAfter(socket, 600);
  await assert.rejects(postJson(socket, '/v1/shim/delete', {}, 2000), (err: unknown) => err instanceof DaemonCallError && err.unreachable);
  assert.deepEqual(await postJsonOnceUp(socket, '/v1/shim/delete', { id: 'c1' }, 3000), { pid: 7, exitStatus: 137 });
  (await up).close();
  const started = Date.now();
  await assert.rejects(postJsonOnceUp(join(dir, 'never.sock'), '/v1/shim/delete', {}, 700), new RegExp(`cannot reach hypercored at ${join(dir, 'never.sock')} \\(ENOENT\\)`));
  assert.ok(Date.now() - started < 1500, 'it gives up at its deadline');
});
