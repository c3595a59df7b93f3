/** The SDK's errors in the CLI's words: what to do about a daemon out of reach, and the daemon's own code and message otherwise. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { HypercoreClient } from '../../sdk/src/index.js';
import { HypercoreError } from '../core/errors.js';
import { initTlsDir } from '../tls/pki.js';
import { TLS_FILES } from '../tls/material.js';
import { cliError } from './daemon-errors.js';
import { resolveEndpoint } from './endpoint.js';

test('no daemon on the socket: the CLI says to start it, naming the socket', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hc-cli-errors-'));
  const socketPath = join(dir, 'none.sock');
  const client = new HypercoreClient({ socketPath });
  try {
    const err = await client.listVms().then(() => undefined, (e: unknown) => e);
    const told = cliError(err, resolveEndpoint({ socket: socketPath }, {}));
    assert.ok(told instanceof HypercoreError);
    assert.equal(told.code, 'HC_DAEMON_UNAVAILABLE');
    assert.match(told.message, new RegExp(`hypercored is not running \\(nothing listens on ${socketPath.replace(/[.]/g, '\\.')}\\); start it`));
  } finally {
    await client.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("nothing on a remote listener's port: the CLI names the listener", async () => {
  const endpoint = resolveEndpoint({ host: 'http://127.0.0.1:9' }, {});
  const client = new HypercoreClient({ url: 'http://127.0.0.1:9' });
  try {
    const told = cliError(await client.listVms().then(() => undefined, (e: unknown) => e), endpoint);
    assert.ok(told instanceof HypercoreError);
    assert.equal(told.message, 'nothing listens on http://127.0.0.1:9; is hypercored running with --listen there?');
  } finally {
    await client.close();
  }
});

test("a remote daemon whose certificate this client does not trust: the CLI says to pass --tls-dir; with it, the call goes through", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hc-cli-errors-'));
  await initTlsDir(dir);
  const server = createTlsServer({ cert: readFileSync(join(dir, TLS_FILES.serverCert)), key: readFileSync(join(dir, TLS_FILES.serverKey)) }, (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"vms":[]}'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const untrusting = new HypercoreClient({ url });
  const trusting = new HypercoreClient({ url, ca: readFileSync(join(dir, TLS_FILES.ca)) });
  try {
    const told = cliError(await untrusting.listVms().then(() => undefined, (e: unknown) => e), resolveEndpoint({ host: url }, {}));
    assert.ok(told instanceof HypercoreError);
    assert.match(told.message, new RegExp(`^the certificate of ${url.replace(/[.]/g, '\\.')} is not trusted \\(.+\\); pass --tls-dir \\(or HYPERCORE_TLS_DIR\\)`));
    assert.deepEqual(await trusting.listVms(), []);
  } finally {
    await Promise.all([untrusting.close(), trusting.close()]);
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an API error keeps the daemon's code, message and details; other errors pass unchanged", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hc-cli-errors-'));
  const socketPath = join(dir, 'api.sock');
  const details = [{ path: 'spec.cores', message: 'must be at least 1' }];
  const server = createServer((_req, res) => res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'HC_CONFIG_INVALID', message: 'spec.cores: must be at least 1', details } })));
  await new Promise<void>((r) => server.listen(socketPath, r));
  const client = new HypercoreClient({ socketPath });
  try {
    const told = cliError(await client.listVms().then(() => undefined, (e: unknown) => e), resolveEndpoint({ socket: socketPath }, {}));
    assert.ok(told instanceof HypercoreError);
    assert.deepEqual([told.code, told.message, told.details], ['HC_CONFIG_INVALID', 'spec.cores: must be at least 1', details]);
    let local: unknown;
    try {
      await client.getImage('../x');
    } catch (err) {
      local = cliError(err, resolveEndpoint({ socket: socketPath }, {}));
    }
    assert.ok(local instanceof HypercoreError, 'a reference the SDK refuses before sending is a bad argument too');
    assert.deepEqual([local.code, local.message], ['HC_INVALID_ARGUMENT', 'image reference "../x": not a reference']);
    const other = new Error('not the SDK');
    assert.equal(cliError(other, resolveEndpoint({ socket: socketPath }, {})), other);
  } finally {
    await client.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
});
