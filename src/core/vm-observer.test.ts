/** VmService tells its observer of each create and start with the plan's timings; an observer that throws changes no outcome. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SqliteVmStore } from '../store/sqlite-vm-store.js';
import type { StepTiming, VmObserver } from './ports.js';
import { FakeProvider } from './testing/fake-provider.js';
import { fakeVmService } from './testing/fake-service.js';
import type { Vm, VmSpec } from './vm.js';
import type { VmService } from './vm-service.js';

function withService(observer: VmObserver, run: (service: VmService) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'hc-observer-'));
  const store = new SqliteVmStore(join(dir, 'state.db'));
  const service = fakeVmService(dir, store, new FakeProvider(), 'e', { observer });
  return run(service).finally(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
}

const spec: VmSpec = { name: 'seen', description: '', cores: 1, memoryMib: 128, kernelArgs: '', drive: '/dev/null', driveReadOnly: false, provider: 'auto', hypervisor: { qemu: { accel: 'tcg' }, firecracker: {}, cloudHypervisor: {} } };

test('create and start are reported with their operation and the steps of their plan', async () => {
  const seen: { vm: Vm; operation: string; steps: string[] }[] = [];
  const observer: VmObserver = { booted: (vm, operation, timings: readonly StepTiming[]) => void seen.push({ vm, operation, steps: timings.map((t) => t.step) }) };
  await withService(observer, async (service) => {
    const vm = await service.create(spec);
    await service.stop(vm.id, { timeoutMs: 1000, force: true });
    await service.start(vm.id);
  });
  assert.deepEqual(seen.map((s) => s.operation), ['create', 'start']);
  assert.equal(seen[0]?.vm.state, 'running');
  assert.ok(seen[0]!.steps.includes('launch') && seen[1]!.steps.includes('launch'), JSON.stringify(seen.map((s) => s.steps)));
});

test('an observer that throws does not fail the create', async () => {
  await withService({ booted: () => { throw new Error('metrics broke'); } }, async (service) => {
    const vm = await service.create(spec);
    assert.equal(vm.state, 'running');
    assert.equal(service.get('seen').state, 'running');
  });
});
