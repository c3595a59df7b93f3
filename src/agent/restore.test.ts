import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Code, TtrpcError } from '../ttrpc/index.js';
import { applyRestore, RESTORE_NETWORK_ONLY_PERL, RESTORE_PERL, type RestoreTarget } from './restore.js';
import type { RestoredRequest } from './protocol/messages.js';

function target(dir: string, pid: number | undefined) {
  const runs: string[][] = [];
  const renamed: string[] = [];
  const t: RestoreTarget = {
    identity: async (fields) => void runs.push(['perl', ...fields]),
    workloadPid: async () => pid,
    renamed: (name) => void renamed.push(name),
    hcDir: dir,
    proc: '/proc',
    now: () => 1_000_000,
  };
  return { t, runs, renamed };
}

const request: RestoredRequest = {
  unixTimeMs: 1_800_000_000_000,
  entropy: Buffer.alloc(64, 0xab),
  hostname: 'web-clone-1',
  machineId: 'a'.repeat(32),
  network: { mac: '02:00:00:00:00:07', address: '10.78.0.7/24', gateway: '10.78.0.1', dns: ['10.78.0.1'] },
};

test('Restored: one perl run sets clock, entropy, reseed, hostnames, MAC, address and route; then machine id and DNS', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hc-restore-'));
  try {
    writeFileSync(join(dir, 'machine-id'), 'b'.repeat(32));
    const { t, runs, renamed } = target(dir, 42);
    await applyRestore(request, t);
    assert.deepEqual(runs, [['perl', '1800000000000', '1000000', 'ab'.repeat(64), 'web-clone-1', '/proc/42/ns/uts', '02:00:00:00:00:07', '10.78.0.7/24', '10.78.0.1']]);
    assert.deepEqual(renamed, ['web-clone-1']);
    assert.equal(readFileSync(join(dir, 'machine-id'), 'utf8'), `${'a'.repeat(32)}\n`);
    assert.equal(readFileSync(join(dir, 'resolv.conf'), 'utf8'), 'nameserver 10.78.0.1\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Restored without a workload or network: only the VM hostname; nothing networked is touched', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hc-restore-'));
  try {
    const { network: _n, ...plain } = request;
    const { t, runs } = target(dir, undefined);
    await applyRestore(plain, t);
    assert.equal(runs.length, 1);
    assert.deepEqual(runs[0]!.slice(5), ['', '', '', ''], 'no UTS namespace to enter, no MAC, address or gateway');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a bad Restored request is refused naming the field, and changes nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hc-restore-'));
  try {
    const bad: [Partial<RestoredRequest>, RegExp][] = [
      [{ hostname: 'bad host;rm' }, /hostname/],
      [{ machineId: 'XYZ' }, /machine_id/],
      [{ entropy: Buffer.alloc(4) }, /entropy/],
      [{ network: { ...request.network!, mac: 'zz' } }, /network\.mac/],
      [{ network: { ...request.network!, address: '10.0.0.1' } }, /network\.address/],
      [{ network: { ...request.network!, dns: ['$(reboot)'] } }, /network\.dns/],
    ];
    for (const [patch, message] of bad) {
      const { t, runs } = target(dir, 1);
      await assert.rejects(applyRestore({ ...request, ...patch }, t), (err: unknown) => err instanceof TtrpcError && err.code === Code.INVALID_ARGUMENT && message.test(err.message));
      assert.deepEqual(runs, []);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the perl program compiles and loads no module (the guest image carries perl without its library)', () => {
  assert.doesNotMatch(RESTORE_PERL, /\b(use|require)\s/);
  const out = execFileSync('/usr/bin/perl', ['-c', '-e', RESTORE_PERL], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  assert.equal(out, '');
});

test('the perl program reads its request from stdin: none changes nothing, a short one is refused before any call', () => {
  const run = (input: string) => spawnSync('/usr/bin/perl', ['-e', RESTORE_PERL], { input, encoding: 'utf8' });
  const none = run('');
  assert.equal(none.status, 0, none.stderr);
  const short = run('1800000000000\t1000000\n');
  assert.notEqual(short.status, 0);
  assert.match(short.stderr, /8 tab-separated fields/);
});

/** Runs the network part of the perl program with a fake `ip` first in PATH that logs its arguments (and fails on `fail`). */
function runNetworkPart(fields: readonly string[], fail?: string) {
  const dir = mkdtempSync(join(tmpdir(), 'hc-restore-ip-'));
  try {
    const log = join(dir, 'ip.log');
    writeFileSync(join(dir, 'ip'), `#!/bin/sh\necho "$*" >> ${log}\ncase "$*" in *'${fail ?? 'never-matches'}'*) echo "ip: RTNETLINK answers: File exists" >&2; exit 2;; esac\n`, { mode: 0o755 });
    const r = spawnSync('/usr/bin/perl', ['-e', RESTORE_NETWORK_ONLY_PERL], { input: `${fields.join('\t')}\n`, encoding: 'utf8', env: { PATH: `${dir}:/usr/bin:/bin` } });
    let calls: string[] = [];
    try {
      calls = readFileSync(log, 'utf8').trim().split('\n');
    } catch {
      // no call
    }
    return { status: r.status, stderr: r.stderr, calls };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const identityFields = ['1800000000000', '1000000', 'ab', 'web-clone-1', ''];

test('the perl program sets MAC, address and default route with ip, in that order', () => {
  const r = runNetworkPart([...identityFields, '02:00:00:00:00:07', '10.78.0.7/24', '10.78.0.1']);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.calls, ['link set dev eth0 address 02:00:00:00:00:07', 'addr flush dev eth0', 'addr add 10.78.0.7/24 dev eth0', 'route replace default via 10.78.0.1 dev eth0']);
  const noGateway = runNetworkPart([...identityFields, '02:00:00:00:00:07', '10.78.0.7/24', '']);
  assert.deepEqual(noGateway.calls.at(-1), 'addr add 10.78.0.7/24 dev eth0', 'no default route without a gateway');
  assert.deepEqual(runNetworkPart([...identityFields, '', '', '']).calls, [], 'no network: no ip at all');
});

test('a failing ip ends the perl program with its stderr, and the commands after it are not run', () => {
  const r = runNetworkPart([...identityFields, '02:00:00:00:00:07', '10.78.0.7/24', '10.78.0.1'], 'addr add');
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /RTNETLINK answers: File exists/);
  assert.match(r.stderr, /ip addr add 10\.78\.0\.7\/24 dev eth0 failed with status 2/);
  assert.equal(r.calls.length, 3);
});
