/** Which daemon the CLI reaches: the socket by default, a remote listener with --host; bad values named. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { initTlsDir } from '../tls/pki.js';
import { resolveEndpoint } from './endpoint.js';

const dir = mkdtempSync(join(tmpdir(), 'hc-endpoint-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('without --host the socket is used; HYPERCORE_HOST or --host picks a remote daemon', async () => {
  assert.deepEqual(resolveEndpoint({}, { HYPERCORE_SOCKET: '/run/x.sock' }), { kind: 'unix', socketPath: '/run/x.sock' });
  await initTlsDir(join(dir, 'tls'));
  const e = resolveEndpoint({ tlsDir: join(dir, 'tls') }, { HYPERCORE_HOST: 'https://[::1]:7443', HYPERCORE_TOKEN: 'hc_x' });
  assert.equal(e.kind, 'remote');
  if (e.kind !== 'remote') return;
  assert.equal(e.origin, 'https://[::1]:7443');
  assert.equal(e.grpcTarget, '[::1]:7443');
  assert.equal(e.host, '::1');
  assert.equal(e.token, 'hc_x');
  assert.ok(e.tls?.ca && e.tls.cert && e.tls.key);
  const flagWins = resolveEndpoint({ host: 'https://10.0.0.1:9', token: 'hc_flag' }, { HYPERCORE_HOST: 'https://h:1', HYPERCORE_TOKEN: 'hc_env' });
  assert.deepEqual(flagWins.kind === 'remote' && [flagWins.origin, flagWins.token, flagWins.tls], ['https://10.0.0.1:9', 'hc_flag', undefined]);
});

test('bad hosts are refused naming the flag or variable; a token never goes over plain TCP off loopback', () => {
  assert.throws(() => resolveEndpoint({ host: 'http://10.0.0.1:7443' }, {}), /--host = "http:\/\/10\.0\.0\.1:7443": plain http is only for loopback addresses; use https/);
  assert.throws(() => resolveEndpoint({}, { HYPERCORE_HOST: 'hc.example:7443' }), /HYPERCORE_HOST = "hc\.example:7443": (must be a URL|the scheme must be https)/);
  assert.throws(() => resolveEndpoint({ host: 'https://h:1/v1' }, {}), /nothing more/);
  assert.throws(() => resolveEndpoint({ host: 'https://h:1', socket: '/s' }, {}), /--socket and --host name two daemons/);
  assert.throws(() => resolveEndpoint({ host: 'https://h:1', tlsDir: join(dir, 'none') }, {}), /--tls-dir: .*ca\.pem is missing/);
  assert.equal(resolveEndpoint({ host: 'http://127.0.0.1:8080' }, {}).kind, 'remote');
});
