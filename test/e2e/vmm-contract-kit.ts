/**
 * Helpers for the e2e tests that drive a provider against a fake VMM (fake Firecracker, fake Cloud
 * Hypervisor): VM lookup, spawns that must fail cleanly, and the fakes' call logs (one JSON line a
 * call, `<vm id>.jsonl` in a records directory).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HypercoreClient } from '../../sdk/src/index.js';
import type { Vm } from '../../src/core/vm.js';
import type { RecordedCall } from '../../src/providers/shared/fake-vmm.js';
import type { TestDaemon } from './harness.js';

/** A line of a fake VMM's call log (each fake adds events of its own). */
export type CallLogRecord = ({ event: 'call' } & RecordedCall) | { event: string; [key: string]: unknown };

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

/** A spawn that must fail: the VM's name, its hac.toml, and what the error must say. */
export type FailingSpawn = [name: string, hac: string, message: RegExp];

/**
 * Each spawn (through the CLI) fails with its message; a VM record that remains is `failed` (and is
 * removed); then no process of the test runs and no VM directory is left.
 */
export async function assertSpawnsFailCleanly(daemon: TestDaemon, api: HypercoreClient, cases: readonly FailingSpawn[]): Promise<void> {
  for (const [name, hac, message] of cases) {
    const r = daemon.cli(['spawn', '--hac', hac]);
    assert.notEqual(r.code, 0, `${name} must fail`);
    assert.match(r.stderr, message, name);
    for (const v of (await api.listVms()).filter((vm) => vm.name === name)) {
      assert.equal(v.state, 'failed', `${name}: a VM record that remains is failed, not running`);
      await api.deleteVm(v.id);
    }
  }
  assert.deepEqual(daemon.strayProcesses(), [], 'no VMM left running');
  assert.deepEqual(daemon.vmDirs(), []);
}
