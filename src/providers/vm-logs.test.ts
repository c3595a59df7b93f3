import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Vm } from '../core/vm.js';
import { rotatedPath } from './console-log.js';
import { VmLogFiles } from './vm-logs.js';

const KiB = 1024;
const vm = { id: 'v1' } as Vm;

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function setup(): { dir: string; logs: VmLogFiles; consoleLog: string; workloadLog: string } {
  const dir = mkdtempSync(join(tmpdir(), 'hc-vmlogs-'));
  const logs = new VmLogFiles(() => ({ consoleLog: join(dir, 'console.log'), stateDir: dir }), { consoleBytes: 64 * KiB, workloadBytes: 256 * KiB });
  return { dir, logs, consoleLog: join(dir, 'console.log'), workloadLog: join(dir, 'workload.log') };
}

test('a flood of workload output never takes a log past its cap, and the newest output is kept', async () => {
  const { dir, logs, consoleLog, workloadLog } = setup();
  try {
    let offset = 0;
    let peak = 0;
    for (let i = 0; i < 2000; i++) {
      // 4 KiB chunks and, now and then, one larger than both caps.
      const chunk = Buffer.alloc(i % 500 === 499 ? 300 * KiB : 4 * KiB, String(i % 10));
      offset += chunk.length;
      // The VMM's writes go to the same console file meanwhile; the timer's rotation races with appends.
      appendFileSync(consoleLog, 'serial line\n');
      await Promise.all([logs.append(vm, chunk, offset), i % 7 === 0 ? logs.rotateConsole(vm) : undefined]);
      assert.ok(sizeOf(workloadLog) <= 256 * KiB && sizeOf(rotatedPath(workloadLog)) <= 256 * KiB, `workload.log within its cap after append ${i}`);
      assert.ok(sizeOf(consoleLog) <= 64 * KiB + 12, `console.log within its cap after append ${i}`);
      peak = Math.max(peak, sizeOf(consoleLog) + sizeOf(rotatedPath(consoleLog)) + sizeOf(workloadLog) + sizeOf(rotatedPath(workloadLog)));
    }
    assert.ok(offset > 8 * 1024 * KiB, 'more than 8 MiB went through');
    assert.ok(peak <= 2 * (64 + 256) * KiB + 64, `all log files together peaked at ${peak} bytes`);
    const last = readFileSync(workloadLog);
    assert.equal(last.subarray(-4 * KiB).toString(), '9'.repeat(4 * KiB), 'the newest output is at the end of workload.log');
    assert.equal(readFileSync(consoleLog).subarray(-4 * KiB).toString(), '9'.repeat(4 * KiB), 'and of console.log');
    assert.equal(await logs.resumeOffset(vm), offset, 'the resume offset is the stored counter, not a file size');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('resume offset: the stored counter; without one (an older daemon), the size of workload.log', async () => {
  const { dir, logs, workloadLog } = setup();
  try {
    assert.equal(await logs.resumeOffset(vm), 0);
    writeFileSync(workloadLog, 'x'.repeat(1234));
    assert.equal(await logs.resumeOffset(vm), 1234);
    await logs.append(vm, Buffer.from('more'), 5_000_000);
    assert.equal(await logs.resumeOffset(vm), 5_000_000);
    writeFileSync(join(dir, 'workload.offset'), 'garbage\n');
    assert.equal(await logs.resumeOffset(vm), 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
