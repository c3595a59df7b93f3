import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigInvalidError } from '../core/errors.js';
import { resolveSettings } from './settings.js';

test('flags win over the environment, which wins over defaults', () => {
  const s = resolveSettings({ root: '/srv/hc', logLevel: 'debug' }, { HYPERCORE_ROOT: '/ignored', HYPERCORE_RUN_DIR: '/run/x', HYPERCORE_AGENT_TIMEOUT: '30', HYPERCORE_INSECURE_REGISTRIES: 'reg.lan:5000, [fd00::1]:5000' });
  assert.equal(s.rootDir, '/srv/hc');
  assert.equal(s.runDir, '/run/x');
  assert.equal(s.socket, '/run/x/hypercore.sock');
  assert.equal(s.logLevel, 'debug');
  assert.equal(s.agentTimeoutMs, 30_000);
  assert.deepEqual(s.insecureRegistries, ['reg.lan:5000', '[fd00::1]:5000']);
  assert.equal(s.maxImageBytes, 8192 * 1024 * 1024);
  assert.equal(resolveSettings({ maxImageSize: '100' }, {}).maxImageBytes, 100 * 1024 * 1024);
  assert.throws(() => resolveSettings({}, { HYPERCORE_MAX_IMAGE_SIZE: '1.5G' }), /HYPERCORE_MAX_IMAGE_SIZE = "1.5G": must be a whole number of MiB/);
  assert.equal(s.workloadLogCapBytes, 16 * 1024 * 1024);
  assert.equal(resolveSettings({ workloadLogCap: '4M' }, {}).workloadLogCapBytes, 4 * 1024 * 1024);
  assert.equal(resolveSettings({}, { HYPERCORE_WORKLOAD_LOG_CAP: '65536' }).workloadLogCapBytes, 65536);
  assert.throws(() => resolveSettings({ workloadLogCap: 'lots' }, {}), /--workload-log-cap = "lots": must be a size/);
});

test('every bad setting is reported at once, named by its flag or variable', () => {
  assert.throws(
    () => resolveSettings({ logLevel: 'loud', insecureRegistry: ['http://reg/v2'] }, { HYPERCORE_AGENT_TIMEOUT: 'abc' }),
    (err: unknown) => {
      assert.ok(err instanceof ConfigInvalidError);
      assert.deepEqual(err.details.map((d) => d.path), ['--log-level', 'HYPERCORE_AGENT_TIMEOUT', '--insecure-registry']);
      assert.match(err.message, /HYPERCORE_AGENT_TIMEOUT = "abc": must be a number of seconds greater than 0/);
      assert.match(err.message, /--log-level = "loud": must be one of trace, debug, info/);
      return true;
    },
  );
  for (const t of ['0', '-5', '1e9', '']) assert.throws(() => resolveSettings({}, { HYPERCORE_AGENT_TIMEOUT: t }), /HYPERCORE_AGENT_TIMEOUT/);
  assert.throws(() => resolveSettings({}, { HYPERCORE_LOG_LEVEL: 'verbose' }), /HYPERCORE_LOG_LEVEL = "verbose"/);
});

test('hypercored with a bad setting exits 1 with one clear line, before it creates anything', () => {
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  const r = spawnSync(process.execPath, [main, '--log-level', 'loud', '--root', '/nonexistent/hc-root'], { encoding: 'utf8', env: { ...process.env, HYPERCORE_AGENT_TIMEOUT: 'abc' }, timeout: 20_000 });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /^hypercored: invalid hypercored settings: --log-level = "loud": .*; HYPERCORE_AGENT_TIMEOUT = "abc": /);
  assert.equal(r.stderr.trim().split('\n').length, 1, 'no stack trace');
});
