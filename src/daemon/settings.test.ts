import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigInvalidError } from '../core/errors.js';
import { readDaemonConfig } from './config-file.js';
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

test('--listen takes https://ADDR:PORT with --tls-dir; plain http only on loopback with --insecure-loopback', () => {
  const s = resolveSettings({ listen: ['https://0.0.0.0:7443', 'https://[::1]:7444', 'http://localhost:7445'], tlsDir: '/etc/hc/tls', insecureLoopback: true, allowHostPath: ['/srv/vms'], allowBridge: ['br-lab'] }, {});
  assert.deepEqual(s.remote, {
    listen: [{ scheme: 'https', host: '0.0.0.0', port: 7443 }, { scheme: 'https', host: '::1', port: 7444 }, { scheme: 'http', host: '127.0.0.1', port: 7445 }],
    tlsDir: '/etc/hc/tls',
    insecureLoopback: true,
    allowHostPaths: ['/srv/vms'],
    allowBridges: ['br-lab'],
  });
  assert.deepEqual(resolveSettings({}, {}).remote, { listen: [], insecureLoopback: false, allowHostPaths: [], allowBridges: [] });
  const problems = (flags: Parameters<typeof resolveSettings>[0]) => {
    try {
      resolveSettings(flags, {});
    } catch (err) {
      return (err as Error).message;
    }
    return 'accepted';
  };
  assert.match(problems({ listen: ['https://0.0.0.0:7443'] }), /--listen = "https:\/\/0\.0\.0\.0:7443": an https listener needs --tls-dir/);
  assert.match(problems({ listen: ['http://0.0.0.0:7443'], insecureLoopback: true }), /plain TCP \(http:\/\/\) is refused off loopback: use https:\/\//);
  assert.match(problems({ listen: ['http://127.0.0.1:7443'] }), /plain TCP \(http:\/\/\) needs --insecure-loopback/);
  assert.match(problems({ listen: ['tcp://1.2.3.4:5'], tlsDir: '/t' }), /the scheme must be https/);
  assert.match(problems({ listen: ['https://hc.example:7443'], tlsDir: '/t' }), /must be an IP address/);
  assert.match(problems({ listen: ['https://0.0.0.0:7443/v1'], tlsDir: '/t' }), /scheme:\/\/ADDR:PORT, nothing more/);
  assert.match(problems({ listen: ['0.0.0.0:7443'], tlsDir: '/t' }), /must be a URL|the scheme must be https/);
  assert.match(problems({ allowHostPath: ['srv'] }), /--allow-host-path = "srv": must be an absolute directory/);
  assert.match(problems({ allowBridge: ['br/0'] }), /--allow-bridge = "br\/0": must be an interface name/);
});

test('the remote listener is never opened from the environment (HYPERCORE_HOST and HYPERCORE_TLS_DIR are the CLI\'s)', () => {
  const s = resolveSettings({}, { HYPERCORE_HOST: 'https://0.0.0.0:7443', HYPERCORE_TLS_DIR: '/t', HYPERCORE_LISTEN: 'https://0.0.0.0:7443' });
  assert.deepEqual(s.remote.listen, []);
});

test('the configuration file gives the remote settings; flags win; bad keys are named with the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hc-conf-'));
  try {
    const file = join(dir, 'hypercored.toml');
    writeFileSync(file, '[remote]\nlisten = ["https://127.0.0.1:7443"]\ntls_dir = "tls"\nallow_host_paths = ["/srv/vms"]\nallow_bridges = ["br-lab"]\n');
    const config = readDaemonConfig(file);
    const fromFile = resolveSettings({}, {}, config).remote;
    assert.deepEqual(fromFile, { listen: [{ scheme: 'https', host: '127.0.0.1', port: 7443 }], tlsDir: join(dir, 'tls'), insecureLoopback: false, allowHostPaths: ['/srv/vms'], allowBridges: ['br-lab'] });
    assert.deepEqual(resolveSettings({ listen: ['https://0.0.0.0:9'], allowHostPath: ['/a'] }, {}, config).remote.listen, [{ scheme: 'https', host: '0.0.0.0', port: 9 }]);
    writeFileSync(file, '[remote]\nlisten = ["http://0.0.0.0:80"]\n');
    assert.throws(() => resolveSettings({}, {}, readDaemonConfig(file)), new RegExp(`${file.replace(/[.]/g, '\\.')}: remote\\.listen = "http://0\\.0\\.0\\.0:80": plain TCP`));
    writeFileSync(file, '[remote]\nlisten = "https://0.0.0.0:1"\ntls_dri = "x"\n[other]\n');
    assert.throws(() => readDaemonConfig(file), /remote\.listen: must be an array of URLs.*remote\.tls_dri: unknown key.*other: unknown key|remote\.tls_dri: unknown key/);
    writeFileSync(file, '[remote\n');
    assert.throws(() => readDaemonConfig(file), /hypercored\.toml:1:\d+: not valid TOML/);
    assert.throws(() => readDaemonConfig(join(dir, 'none.toml')), /cannot read the hypercored configuration .*none\.toml: ENOENT/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
