/**
 * Helpers for the e2e tests that drive a provider against a fake VMM (fake Firecracker, fake Cloud
 * Hypervisor): hac.toml files for a provider, VM lookup, and the fakes' call logs (one JSON line a
 * call, `<vm id>.jsonl` in a records directory).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Vm } from '../../src/core/vm.js';
import type { RecordedCall } from '../../src/providers/shared/fake-vmm.js';
import { isAlive, type TestDaemon } from './harness.js';

/** A line of a fake VMM's call log (each fake adds events of its own). */
export type CallLogRecord = ({ event: 'call' } & RecordedCall) | { event: string; [key: string]: unknown };

/** Writes `<name>.toml` for `provider`, whose settings table `table` names `binary`. */
export function providerHac(daemon: TestDaemon, name: string, provider: string, table: string, binary: string, hardware: string): string {
  const file = join(daemon.dir, `${name}.toml`);
  writeFileSync(file, `[spacecore]\nname = "${name}"\n[hardware]\ncores = 1\nmemory = 128\n${hardware}\n[hypervisor]\nprovider = "${provider}"\n[hypervisor.${table}]\nbinary = "${binary}"\n[network]\nmode = "none"\n`);
  return file;
}

export function vmById(daemon: TestDaemon, id: string): Vm | undefined {
  const r = daemon.cli(['ls', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as Vm[]).find((v) => v.id === id);
}

export class FakeVmmCallLog {
  constructor(readonly dir: string) {}

  records<T extends CallLogRecord = CallLogRecord>(id: string): T[] {
    try {
      return readFileSync(join(this.dir, `${id}.jsonl`), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as T);
    } catch {
      return [];
    }
  }

  /** The VM's calls that change something, as `METHOD path` (path with `prefix` taken off). */
  changes(id: string, prefix = ''): string[] {
    return this.calls(id).flatMap((c) => (c.method !== 'GET' ? [`${c.method} ${c.path.startsWith(prefix) ? c.path.slice(prefix.length) : c.path}`] : []));
  }

  calls(id: string): RecordedCall[] {
    return this.records(id).flatMap((r) => (r.event === 'call' ? [r as RecordedCall] : []));
  }

  /** Every call of every VM that broke the contract or a rule. */
  violations(): string[] {
    return readdirSync(this.dir).flatMap((f) => this.calls(f.replace(/\.jsonl$/, '')).flatMap((c) => (c.violation ? [`${f}: ${c.method} ${c.path}: ${c.violation}`] : [])));
  }
}

/**
 * Spawns `hac` and takes the VM through pause, resume, stop and start, checking each state and
 * that stop ended the VMM; returns the VM's id and the pid of its second VMM (still running).
 */
export function spawnPauseResumeStopStart(daemon: TestDaemon, hac: string, provider: string): { id: string; pid: number } {
  const spawn = daemon.cli(['spawn', '--hac', hac]);
  assert.equal(spawn.code, 0, `${spawn.stderr}\n${daemon.log()}`);
  const id = spawn.stdout.trim().split('\n').pop()!;
  const first = vmById(daemon, id)!;
  assert.equal(first.state, 'running');
  assert.equal(first.provider, provider);
  for (const [command, state] of [['pause', 'paused'], ['resume', 'running'], ['stop', 'stopped']] as const) {
    const r = daemon.cli([command, id, ...(command === 'stop' ? ['--time', '10'] : [])]);
    assert.equal(r.code, 0, `${command}: ${r.stderr}`);
    assert.equal(vmById(daemon, id)?.state, state, command);
  }
  assert.ok(!isAlive(first.pid!), 'stop ended the VMM');
  assert.equal(daemon.cli(['start', id]).code, 0);
  const second = vmById(daemon, id)!;
  assert.equal(second.state, 'running');
  return { id, pid: second.pid! };
}

/** A spawn that must fail: the VM's name, its hac.toml, and what the error must say. */
export type FailingSpawn = [name: string, hac: string, message: RegExp];

/**
 * Each spawn fails with its message; a VM record that remains is `failed` (and is removed); then
 * no process of the test runs and no VM directory is left.
 */
export function assertSpawnsFailCleanly(daemon: TestDaemon, cases: readonly FailingSpawn[]): void {
  for (const [name, hac, message] of cases) {
    const r = daemon.cli(['spawn', '--hac', hac]);
    assert.notEqual(r.code, 0, `${name} must fail`);
    assert.match(r.stderr, message, name);
    const left = (JSON.parse(daemon.cli(['ls', '--json']).stdout) as Vm[]).filter((v) => v.name === name);
    for (const v of left) {
      assert.equal(v.state, 'failed', `${name}: a VM record that remains is failed, not running`);
      assert.equal(daemon.cli(['rm', v.id]).code, 0);
    }
  }
  assert.deepEqual(daemon.strayProcesses(), [], 'no VMM left running');
  assert.deepEqual(daemon.vmDirs(), []);
}
