import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Code, TtrpcError } from '../ttrpc/index.js';
import { applyRestore, RESTORE_PERL, type RestoreTarget } from './restore.js';
import type { RestoredRequest } from './protocol/messages.js';

function target(dir: string, pid: number | undefined) {
  const runs: string[][] = [];
  const renamed: string[] = [];
  const t: RestoreTarget = {
    run: async (file, args) => void runs.push([file, ...args]),
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

test('Restored: one perl run sets clock, entropy, reseed and hostnames; then machine id, MAC, address, route, DNS', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hc-restore-'));
  try {
    writeFileSync(join(dir, 'machine-id'), 'b'.repeat(32));
    const { t, runs, renamed } = target(dir, 42);
    await applyRestore(request, t);
    const [perl, ...rest] = runs;
    assert.deepEqual(perl, ['perl', '1800000000000', '1000000', 'ab'.repeat(64), 'web-clone-1', '/proc/42/ns/uts']);
    assert.deepEqual(rest, [
      ['ip', 'link', 'set', 'dev', 'eth0', 'address', '02:00:00:00:00:07'],
      ['ip', 'addr', 'flush', 'dev', 'eth0'],
      ['ip', 'addr', 'add', '10.78.0.7/24', 'dev', 'eth0'],
      ['ip', 'route', 'replace', 'default', 'via', '10.78.0.1', 'dev', 'eth0'],
    ]);
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
    assert.equal(runs[0]!.at(-1), '', 'no UTS namespace to enter');
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
  assert.match(short.stderr, /5 tab-separated fields/);
});
