import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import type { Vm } from '../core/vm.js';
import { plainTable, startTrace, vmTable } from './format.js';

test('a table: columns padded to their widest cell, four spaces apart, no trailing blanks', () => {
  assert.equal(plainTable(['ID', 'NAME', 'X'], [['abc', 'a very long name', 3], ['d', '', -1]]), 'ID     NAME                X\nabc    a very long name    3\nd                          -1');
  assert.equal(plainTable(['ID', 'NAME'], []), 'ID    NAME');
  assert.equal(plainTable(['A', 'B'], [['é', 'x']]), 'A    B\né    x', 'a code point is one column');
});

function vm(i: number): Vm {
  return {
    id: `${String(i).padStart(16, '0')}`,
    name: `vm-${i}`,
    state: 'stopped',
    provider: 'qemu',
    createdAt: new Date(Date.now() - i * 1000).toISOString(),
    updatedAt: new Date().toISOString(),
    spec: { name: `vm-${i}`, description: '', cores: 1, memoryMib: 256, kernelArgs: '', driveReadOnly: false, drive: '/x', provider: 'qemu', hypervisor: {} },
  };
}

test('ls of 1000 VMs renders in a few milliseconds', () => {
  const vms = Array.from({ length: 1000 }, (_, i) => vm(i));
  let fastest = Infinity;
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const text = vmTable(vms);
    fastest = Math.min(fastest, performance.now() - t0);
    assert.equal(text.split('\n').length, 1001);
  }
  assert.ok(fastest < 50, `vmTable(1000 VMs) took ${fastest.toFixed(1)} ms`);
});

test('the last start reads as its steps', () => {
  assert.equal(
    startTrace({ at: '2026-01-01T00:00:00.000Z', totalMs: 4312.4, steps: [{ step: 'record', ms: 0.4 }, { step: 'launch', ms: 180.2 }, { step: 'agent', ms: 3900 }, { step: 'image-disk', ms: 2, done: true }] }),
    '4312 ms at 2026-01-01T00:00:00.000Z: record 0.4, launch 180, agent 3900, image-disk 2.0 (done before)',
  );
});
