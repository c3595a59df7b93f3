import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Code, TtrpcError } from '../ttrpc/index.js';
import { applyRestore, RESTORE_ARG, type RestoreTarget } from './restore.js';
import type { RestoredRequest } from './protocol/messages.js';

function target(dir: string, pid: number | undefined) {
  const runs: string[][] = [];
  const renamed: string[] = [];
  const t: RestoreTarget = {
    identity: async (fields) => void runs.push(['helper', ...fields]),
    workloadPid: () => pid,
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

test('Restored: one helper run sets clock, entropy, reseed, hostnames, MAC, address and route; then machine id and DNS', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hc-restore-'));
  try {
    writeFileSync(join(dir, 'machine-id'), 'b'.repeat(32));
    const { t, runs, renamed } = target(dir, 42);
    await applyRestore(request, t);
    assert.deepEqual(runs, [['helper', '1800000000000', '1000000', 'ab'.repeat(64), 'web-clone-1', '/proc/42/ns/uts', '02:00:00:00:00:07', '10.78.0.7/24', '10.78.0.1']]);
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

// This file runs as dist/src/agent/restore.test.js; the build puts the exec helper in dist/agent.
const HELPER = fileURLToPath(new URL('../../agent/exec-helper', import.meta.url));
/** The helper's tests need root (unshare, RNDRESEEDCRNG) and the binary the build made with gcc. */
const helperSkip = (process.getuid?.() !== 0 && 'needs root (unshare, RNDRESEEDCRNG)') || (!existsSync(HELPER) && 'no exec-helper binary (gcc missing at build)');

/**
 * Runs `exec-helper restore` with `fields` (one line) in a UTS namespace of its own (so a hostname it
 * sets is not the host's), with a fake `ip` first in PATH that logs its arguments and the hostname it
 * sees, and fails on `fail`.
 */
function runHelper(input: string, fail?: string): { status: number | null; stderr: string; calls: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'hc-restore-ip-'));
  try {
    const log = join(dir, 'ip.log');
    writeFileSync(join(dir, 'ip'), `#!/bin/sh\necho "$* @$(cat /proc/sys/kernel/hostname)" >> ${log}\ncase "$*" in *'${fail ?? 'never-matches'}'*) echo "ip: RTNETLINK answers: File exists" >&2; exit 2;; esac\n`, { mode: 0o755 });
    const r: SpawnSyncReturns<string> = spawnSync('unshare', ['--uts', HELPER, RESTORE_ARG], { input, encoding: 'utf8', env: { PATH: `${dir}:/usr/bin:/bin` } });
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

const line = (fields: readonly string[]): string => `${fields.join('\t')}\n`;
/** No clock (the host's must not move), but entropy (written and reseeded for real) and a hostname. */
const identityFields = ['', '', 'ab'.repeat(32), 'web-clone-1', ''];
const networkFields = ['02:00:00:00:00:07', '10.78.0.7/24', '10.78.0.1'];

test('the restore helper sets MAC, address and default route with ip, in that order, after the hostname', { skip: helperSkip }, () => {
  const r = runHelper(line([...identityFields, ...networkFields]));
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.calls, [
    'link set dev eth0 address 02:00:00:00:00:07 @web-clone-1',
    'addr flush dev eth0 @web-clone-1',
    'addr add 10.78.0.7/24 dev eth0 @web-clone-1',
    'route replace default via 10.78.0.1 dev eth0 @web-clone-1',
  ]);
  const noGateway = runHelper(line([...identityFields, '02:00:00:00:00:07', '10.78.0.7/24', '']));
  assert.equal(noGateway.calls.at(-1), 'addr add 10.78.0.7/24 dev eth0 @web-clone-1', 'no default route without a gateway');
  assert.deepEqual(runHelper(line([...identityFields, '', '', ''])).calls, [], 'no network: no ip at all');
});

test('a failing ip ends the restore helper with its stderr, and the commands after it are not run', { skip: helperSkip }, () => {
  const r = runHelper(line([...identityFields, ...networkFields]), 'addr add');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /RTNETLINK answers: File exists/);
  assert.match(r.stderr, /ip addr add 10\.78\.0\.7\/24 dev eth0 failed with status 2/);
  assert.equal(r.calls.length, 3);
});

test('the restore helper reads one request from stdin: none changes nothing; a bad one is refused before any change', { skip: helperSkip }, () => {
  const none = runHelper('');
  assert.deepEqual([none.status, none.stderr, none.calls], [0, '', []]);
  const bad: [string, RegExp][] = [
    [line(['1800000000000', '1000000']), /8 tab-separated fields expected/],
    [line([...identityFields, ...networkFields, 'extra']), /8 tab-separated fields expected/],
    [`${line([...identityFields, ...networkFields]).trimEnd()}`, /does not end with a newline/],
    [line(['', '', 'abc', 'web-clone-1', '', ...networkFields]), /entropy: not an even number/],
    [line(['', '', 'zz', 'web-clone-1', '', ...networkFields]), /entropy: not hex/],
    [line(['', '', 'ab'.repeat(4097), 'web-clone-1', '', ...networkFields]), /entropy: not an even number of hex digits within the limit/],
    [line(['17x', '1', 'ab', 'web-clone-1', '', ...networkFields]), /host time: not a time in ms/],
    [line(['17', '1y', 'ab', 'web-clone-1', '', ...networkFields]), /guest time: not a time in ms/],
    [line(['', '', 'ab', 'h'.repeat(65), '', ...networkFields]), /hostname: too long/],
    [line(['', '', 'ab', 'bad\x01host', '', ...networkFields]), /hostname: not printable/],
    [line(['', '', 'ab', 'web', '', '02:00:00:00:00:07', '', '']), /address: a MAC without an address/],
    ['x'.repeat(20_000), /longer than the limit/],
  ];
  for (const [input, message] of bad) {
    const r = runHelper(input);
    assert.equal(r.status, 1, input.slice(0, 80));
    assert.match(r.stderr, message);
    assert.deepEqual(r.calls, [], 'nothing run');
  }
});

test("the restore helper sets the hostname in the workload's UTS namespace too", { skip: helperSkip }, async () => {
  // The "workload": a process in a UTS namespace of its own, named before the restore.
  const workload = spawn('unshare', ['--uts', 'sh', '-c', 'echo before > /proc/sys/kernel/hostname; echo up; exec sleep 30'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      workload.stdout.once('data', () => resolve());
      workload.once('exit', () => reject(new Error('the namespace holder exited')));
    });
    // unshare executes sh, which executes sleep: the same pid throughout.
    const ns = `/proc/${workload.pid}/ns/uts`;
    const r = runHelper(line(['', '', 'ab'.repeat(16), 'web-clone-2', ns, '', '', '']));
    assert.equal(r.status, 0, r.stderr);
    const seen = spawnSync('nsenter', ['-t', String(workload.pid), '-u', 'cat', '/proc/sys/kernel/hostname'], { encoding: 'utf8' });
    assert.equal(seen.stdout.trim(), 'web-clone-2');
    const missing = runHelper(line(['', '', 'ab', 'web', '/proc/999999999/ns/uts', '', '', '']));
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /\/proc\/999999999\/ns\/uts: No such file or directory/);
  } finally {
    workload.kill('SIGKILL');
  }
});
