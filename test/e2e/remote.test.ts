/**
 * The remote API end to end: a real hypercored with `--listen https://127.0.0.1:PORT`, certificates
 * from `hypercore tls init`, the real CLI with `--host` and `--tls-dir` or a token, a real QEMU
 * guest. Each refusal (wrong CA, expired certificate, revoked token, read scope writing, a host
 * path outside the allowed directories, plain TCP) is checked to change nothing: no VM record,
 * no VM directory, no new QEMU process.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadVmServiceDefinition } from '../../src/api/proto.js';
import type { Vm } from '../../src/core/vm.js';
import { buildDemoRootfs, DEMO_MARKER } from '../../src/guest/demo-rootfs.js';
import { startRegistry, type RegistryProcess } from '../../src/images/registry/testing/registry-process.js';
import { issueCertificate } from '../../src/tls/pki.js';
import { pushBusyboxImage } from './busybox-image.js';
import { freePort, isAlive, lastLine, processesMentioning, repoRoot, TestDaemon, waitFor, type CliResult } from './harness.js';

const daemon = new TestDaemon('hc-e2e-remote-');
const tls = join(daemon.dir, 'tls');
const allowed = join(daemon.dir, 'allowed');
const outside = join(daemon.dir, 'outside');
let https = '';
let plain = '';
let registry: RegistryProcess | undefined;

/** The CLI as a remote client: no socket in its environment, only what `env` gives. */
function remote(args: readonly string[], env: Record<string, string> = {}): CliResult {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HYPERCORE_')));
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'hypercore'), ...args], { env: { ...clean, ...env }, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A directory with the daemon's ca.pem (to trust it) and the client certificate and key of `certDir`. */
function clientDir(name: string, certDir: string): string {
  const d = join(daemon.dir, name);
  mkdirSync(d, { mode: 0o700 });
  copyFileSync(join(tls, 'ca.pem'), join(d, 'ca.pem'));
  copyFileSync(join(certDir, 'cert.pem'), join(d, 'cert.pem'));
  copyFileSync(join(certDir, 'key.pem'), join(d, 'key.pem'));
  return d;
}

function hac(name: string, drive: string): string {
  const file = join(daemon.dir, `${name}.toml`);
  writeFileSync(file, `[spacecore]\nname = "${name}"\n[hardware]\nmemory = 192\ndrive = "${drive}"\n[network]\nmode = "none"\n`);
  return file;
}

function localVms(): Vm[] {
  const r = daemon.cli(['ls', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Vm[];
}

/** What a refused call must leave as it was. */
function snapshot(): { vms: string; dirs: string[]; qemus: number[] } {
  return { vms: JSON.stringify(localVms().map((v) => [v.id, v.state, v.pid])), dirs: daemon.vmDirs().sort(), qemus: processesMentioning(daemon.dir).sort() };
}

before(async () => {
  const init = daemon.cli(['tls', 'init', tls]);
  assert.equal(init.code, 0, init.stderr);
  assert.deepEqual(readdirSync(tls).sort(), ['ca-key.pem', 'ca.pem', 'cert.pem', 'key.pem', 'server-cert.pem', 'server-key.pem']);
  mkdirSync(allowed);
  mkdirSync(outside);
  await buildDemoRootfs({ output: join(allowed, 'rootfs.ext4') });
  copyFileSync(join(allowed, 'rootfs.ext4'), join(outside, 'rootfs.ext4'));
  https = `https://127.0.0.1:${await freePort()}`;
  plain = `http://127.0.0.1:${await freePort()}`;
  await daemon.start(['--listen', https, '--listen', plain, '--insecure-loopback', '--tls-dir', tls, '--allow-host-path', allowed]);
});

after(async () => {
  await daemon.cleanup();
  await registry?.stop();
});

test('hypercored refuses plain TCP off loopback, or without --insecure-loopback, and a missing TLS directory, before it touches anything', () => {
  const root = join(daemon.dir, 'never');
  const start = (args: string[]) => spawnSync(process.execPath, [join(repoRoot, 'bin', 'hypercored'), '--root', root, '--run-dir', join(root, 'run'), '--socket', join(root, 's.sock'), ...args], { encoding: 'utf8', timeout: 30_000 });
  const offLoopback = start(['--listen', 'http://0.0.0.0:7999', '--insecure-loopback']);
  assert.equal(offLoopback.status, 1);
  assert.match(offLoopback.stderr, /--listen = "http:\/\/0\.0\.0\.0:7999": plain TCP \(http:\/\/\) is refused off loopback: use https:\/\//);
  const noFlag = start(['--listen', 'http://127.0.0.1:7999']);
  assert.equal(noFlag.status, 1);
  assert.match(noFlag.stderr, /needs --insecure-loopback/);
  const noFiles = start(['--listen', 'https://127.0.0.1:7999', '--tls-dir', join(daemon.dir, 'no-tls')]);
  assert.equal(noFiles.status, 1);
  assert.match(noFiles.stderr, /--tls-dir: .*no-tls\/ca\.pem is missing .*hypercore tls init/);
  assert.equal(existsSync(root), false, 'nothing was created');
});

test('with the client certificate of tls init, the CLI spawns, lists, reads logs and removes a real VM remotely', async () => {
  const spawn = remote(['--host', https, '--tls-dir', tls, 'spawn', '--hac', hac('far', join(allowed, 'rootfs.ext4'))]);
  assert.equal(spawn.code, 0, `${spawn.stderr}\n${daemon.log()}`);
  const id = lastLine(spawn.stdout);
  const listed = remote(['ls', '--json'], { HYPERCORE_HOST: https, HYPERCORE_TLS_DIR: tls });
  assert.equal(listed.code, 0, listed.stderr);
  const [vm] = JSON.parse(listed.stdout) as Vm[];
  assert.equal(vm?.id, id);
  assert.equal(vm?.state, 'running');
  assert.ok(isAlive(vm!.pid!), 'QEMU runs');
  await waitFor('the guest marker in the remote logs', 60_000, () => (remote(['--host', https, '--tls-dir', tls, 'logs', id]).stdout.includes(DEMO_MARKER) ? true : undefined));
});

test('a client certificate signed by another CA is refused (401) and changes nothing', () => {
  const other = join(daemon.dir, 'other-tls');
  assert.equal(daemon.cli(['tls', 'init', other]).code, 0);
  const before = snapshot();
  const r = remote(['--host', https, '--tls-dir', clientDir('wrong-ca', other), 'spawn', '--hac', hac('wrongca', join(allowed, 'rootfs.ext4'))]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /client certificate "hypercore-client" refused: .* \[HC_UNAUTHENTICATED\]/);
  assert.deepEqual(snapshot(), before);
  const curl = spawnSync('curl', ['-sS', '--cacert', join(tls, 'ca.pem'), '--cert', join(other, 'cert.pem'), '--key', join(other, 'key.pem'), '-w', '%{http_code}', '-o', '/dev/null', '-X', 'DELETE', `${https}/v1/vms/far?force=true`], { encoding: 'utf8' });
  assert.equal(curl.stdout, '401');
  assert.deepEqual(snapshot(), before);
});

test('an expired client certificate of the right CA is refused (401) and changes nothing', async () => {
  const late = join(daemon.dir, 'late-cert');
  mkdirSync(late);
  await issueCertificate({ caDir: tls, keyPath: join(late, 'key.pem'), certPath: join(late, 'cert.pem'), commonName: 'late', usage: 'client', days: -1 });
  const before = snapshot();
  const r = remote(['--host', https, '--tls-dir', clientDir('expired', late), 'rm', '-f', 'far']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /client certificate "late" refused: CERT_HAS_EXPIRED \[HC_UNAUTHENTICATED\]/);
  assert.deepEqual(snapshot(), before);
});

test('a token works until it is revoked, then is refused (401) and changes nothing', () => {
  const created = daemon.cli(['token', 'create', '--scope', 'write', '--name', 'e2e']);
  assert.equal(created.code, 0, created.stderr);
  const token = created.stdout.trim();
  const trustOnly = join(daemon.dir, 'trust-only');
  mkdirSync(trustOnly, { mode: 0o700 });
  copyFileSync(join(tls, 'ca.pem'), join(trustOnly, 'ca.pem'));
  const env = { HYPERCORE_HOST: https, HYPERCORE_TLS_DIR: trustOnly, HYPERCORE_TOKEN: token };
  assert.equal(remote(['ls'], env).code, 0);
  const id = token.slice(3, 19);
  assert.equal(daemon.cli(['token', 'revoke', id]).code, 0);
  assert.match(daemon.cli(['token', 'ls']).stdout, new RegExp(`${id}\\s+e2e\\s+write\\s+\\S+ ago\\s+\\S+ ago\\s+\\S+ ago`));
  const before = snapshot();
  const r = remote(['rm', '-f', 'far'], env);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`token ${id} was revoked at .* \\[HC_UNAUTHENTICATED\\]`));
  assert.deepEqual(snapshot(), before);
});

test('a read token may list but not write (403): no stop, no spawn, no token', () => {
  const token = daemon.cli(['token', 'create', '--scope', 'read']).stdout.trim();
  const env = { HYPERCORE_HOST: https, HYPERCORE_TLS_DIR: join(daemon.dir, 'trust-only'), HYPERCORE_TOKEN: token };
  assert.equal(remote(['ls'], env).code, 0);
  const before = snapshot();
  const stop = remote(['stop', 'far'], env);
  assert.equal(stop.code, 1);
  assert.match(stop.stderr, /POST \/v1\/vms\/:id\/stop needs scope write; token [0-9a-f]{16} has scope read \[HC_PERMISSION_DENIED\]/);
  const spawn = remote(['spawn', '--hac', hac('reader', join(allowed, 'rootfs.ext4'))], env);
  assert.match(spawn.stderr, /POST \/v1\/vms needs scope write; .*\[HC_PERMISSION_DENIED\]/);
  const tokensBefore = daemon.cli(['token', 'ls', '--json']).stdout;
  assert.match(remote(['token', 'create', '--scope', 'admin'], env).stderr, /POST \/v1\/tokens needs scope admin/);
  assert.equal(daemon.cli(['token', 'ls', '--json']).stdout, tokensBefore);
  assert.deepEqual(snapshot(), before);
});

test('a drive outside the allowed directories is refused (403) and changes nothing, however it is named', () => {
  const token = daemon.cli(['token', 'create', '--scope', 'write']).stdout.trim();
  const env = { HYPERCORE_HOST: https, HYPERCORE_TLS_DIR: join(daemon.dir, 'trust-only'), HYPERCORE_TOKEN: token };
  const before = snapshot();
  const direct = remote(['spawn', '--hac', hac('outside', join(outside, 'rootfs.ext4'))], env);
  assert.equal(direct.code, 1);
  assert.match(direct.stderr, /host path refused: spec\.drive = ".*outside\/rootfs\.ext4": is outside the directories remote callers may use \(allowed: .*allowed\) \[HC_PERMISSION_DENIED\]/);
  const dotdot = remote(['spawn', '--hac', hac('dotdot', `${allowed}/../outside/rootfs.ext4`)], env);
  assert.match(dotdot.stderr, /is outside the directories remote callers may use/);
  const kernel = remote(['spawn', '--hac', hac('kernel', join(allowed, 'rootfs.ext4')), '--kernel', '/etc/passwd'], env);
  assert.match(kernel.stderr, /spec\.kernel = "\/etc\/passwd": is outside/);
  assert.deepEqual(snapshot(), before);
});

test('plain TCP to the TLS port gets no answer; the loopback plain listener takes only tokens', () => {
  const curl = spawnSync('curl', ['-sS', '-m', '10', '-o', '/dev/null', '-w', '%{http_code}', `${https.replace('https', 'http')}/v1/vms`], { encoding: 'utf8' });
  assert.notEqual(curl.status, 0, 'curl fails: the port speaks only TLS');
  assert.notEqual(curl.stdout, '200');
  const token = daemon.cli(['token', 'create', '--scope', 'read']).stdout.trim();
  assert.match(remote(['--host', plain, 'ls']).stderr, /no credentials: .*\[HC_UNAUTHENTICATED\]/);
  const ok = remote(['--host', plain, '--token', token, 'ls', '--json']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal((JSON.parse(ok.stdout) as Vm[])[0]?.name, 'far');
});

test('gRPC on the same port: a client certificate or a token gets in, nothing else does', async () => {
  const Client = loadVmServiceDefinition();
  const ca = readFileSync(join(tls, 'ca.pem'));
  const list = (credentials: grpc.ChannelCredentials, token?: string) =>
    new Promise<{ err?: grpc.ServiceError; vms?: Vm[] }>((resolve) => {
      const c = new Client(https.replace('https://', ''), credentials);
      const md = new grpc.Metadata();
      if (token) md.set('authorization', `Bearer ${token}`);
      (c as unknown as { ListVms(r: object, m: grpc.Metadata, cb: (e: grpc.ServiceError | null, r: { vms: Vm[] }) => void): void }).ListVms({}, md, (err, res) => {
        c.close();
        resolve(err ? { err } : { vms: res.vms });
      });
    });
  const byCert = await list(grpc.credentials.createSsl(ca, readFileSync(join(tls, 'key.pem')), readFileSync(join(tls, 'cert.pem'))));
  assert.deepEqual(byCert.vms?.map((v) => v.name), ['far']);
  const token = daemon.cli(['token', 'create', '--scope', 'read']).stdout.trim();
  assert.deepEqual((await list(grpc.credentials.createSsl(ca), token)).vms?.map((v) => v.name), ['far']);
  const none = await list(grpc.credentials.createSsl(ca));
  assert.equal(none.err?.code, grpc.status.UNAUTHENTICATED);
});

test('exec and run go over the remote listener (wss): a write token runs a command in an image VM, a read token may not', async () => {
  registry = await startRegistry();
  const image = await pushBusyboxImage(registry, 'NAME="Hypercore remote test"\nID=hcremote\n');
  const writer = daemon.cli(['token', 'create', '--scope', 'write']).stdout.trim();
  const reader = daemon.cli(['token', 'create', '--scope', 'read']).stdout.trim();
  const env = (token: string) => ({ HYPERCORE_HOST: https, HYPERCORE_TLS_DIR: join(daemon.dir, 'trust-only'), HYPERCORE_TOKEN: token });
  const run = remote(['run', '--rm', '--network', 'none', image, '--', 'sh', '-c', 'grep ^ID= /etc/os-release; exit 4'], env(writer));
  assert.equal(run.code, 4, `${run.stderr}\n${daemon.log()}`);
  assert.match(run.stdout, /ID=hcremote/);
  const file = join(daemon.dir, 'agent.toml');
  writeFileSync(file, `[spacecore]\nname = "agentvm"\n[hardware]\nmemory = 256\nref = "${image}"\n[workload]\ncommand = ["sleep", "100000"]\n[network]\nmode = "none"\n`);
  const spawned = remote(['spawn', '--hac', file], env(writer));
  assert.equal(spawned.code, 0, spawned.stderr);
  const exec = remote(['exec', 'agentvm', '--', 'cat', '/etc/os-release'], env(writer));
  assert.equal(exec.code, 0, exec.stderr);
  assert.match(exec.stdout, /Hypercore remote test/);
  // The same WebSocket with the client certificate (mTLS) instead of a token; the exit code comes back.
  const mtls = remote(['--host', https, '--tls-dir', tls, 'exec', 'agentvm', '--', 'sh', '-c', 'echo over-mtls; exit 3']);
  assert.equal(mtls.code, 3, mtls.stderr);
  assert.equal(mtls.stdout, 'over-mtls\n');
  const refused = remote(['exec', 'agentvm', '--', 'touch', '/tmp/should-not-exist'], env(reader));
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /GET \/v1\/vms\/:id\/exec needs scope write; token [0-9a-f]{16} has scope read \[HC_PERMISSION_DENIED\]/);
  assert.equal(remote(['exec', 'agentvm', '--', 'test', '-e', '/tmp/should-not-exist'], env(writer)).code, 1, 'the refused exec never ran');

  // What the image VMs did shows in the metrics, read remotely with the read token.
  const scrape = spawnSync('curl', ['-sS', '--cacert', join(tls, 'ca.pem'), '-H', `authorization: Bearer ${reader}`, `${https}/metrics`], { encoding: 'utf8' });
  assert.equal(scrape.status, 0, scrape.stderr);
  const value = (series: string) => Number(new RegExp(`^${series.replace(/[{}"()|.]/g, '\\$&')} (\\S+)$`, 'm').exec(scrape.stdout)?.[1]);
  assert.ok(value('hypercore_image_pull_bytes_total') > 100_000, 'the busybox layer was pulled');
  assert.ok(value('hypercore_image_cache_bytes{kind="blobs"}') > 100_000 && value('hypercore_image_cache_bytes{kind="blocks"}') > 0);
  assert.ok(value('hypercore_agent_rpc_seconds_count{method="CreateProcess",outcome="ok"}') >= 2, 'the execs');
  assert.ok(value('hypercore_agent_rpc_seconds_count{method="StartWorkload",outcome="ok"}') >= 2, 'the run and the spawn');
  assert.ok(value('hypercore_vm_boot_step_seconds_count{step="workload"}') >= 2);
  assert.equal(value('hypercore_api_requests_total{transport="http",listener="remote",route="GET /v1/vms/:id/exec",code="403"}'), 1);
  assert.equal(remote(['rm', '-f', 'agentvm'], env(writer)).code, 0);
});

test('the remote VM is removed through the remote API and leaves nothing behind', () => {
  const pid = localVms()[0]!.pid!;
  const rm = remote(['--host', https, '--tls-dir', tls, 'rm', '-f', 'far']);
  assert.equal(rm.code, 0, rm.stderr);
  assert.deepEqual(localVms(), []);
  assert.equal(isAlive(pid), false);
  assert.deepEqual(daemon.vmDirs(), []);
});
