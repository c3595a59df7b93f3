import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { countProcesses, helloResponse, parseLoad1, parseMeminfo, parseUptimeMs, readStats } from './stats.js';

test('/proc parsers', () => {
  assert.equal(parseUptimeMs('12345.67 2345.67\n'), 12345670);
  assert.equal(parseUptimeMs('garbage'), 0);
  assert.equal(parseLoad1('0.25 0.10 0.05 1/123 456\n'), 0.25);
  assert.equal(parseLoad1(''), 0);
  assert.deepEqual(parseMeminfo('MemTotal:  1000 kB\nMemFree:  100 kB\nMemAvailable:   600 kB\nCached: 200 kB\n'), { totalBytes: 1024000, availableBytes: 614400 });
  assert.deepEqual(parseMeminfo('MemTotal:  1000 kB\nMemFree:  100 kB\nCached: 200 kB\n'), { totalBytes: 1024000, availableBytes: 307200 });
  assert.equal(countProcesses(['1', '42', 'self', 'meminfo', '1000']), 3);
});

test('readStats and helloResponse read a /proc tree', async () => {
  const proc = await mkdtemp(join(tmpdir(), 'hc-proc-'));
  try {
    await writeFile(join(proc, 'uptime'), '5.5 1.0\n');
    await writeFile(join(proc, 'loadavg'), '1.50 0.5 0.1 2/50 99\n');
    await writeFile(join(proc, 'meminfo'), 'MemTotal: 2048 kB\nMemAvailable: 1024 kB\n');
    for (const pid of ['1', '7', '100']) await mkdir(join(proc, pid));
    await mkdir(join(proc, 'sys/kernel/random'), { recursive: true });
    await writeFile(join(proc, 'sys/kernel/random/boot_id'), 'b00t-1d\n');
    assert.deepEqual(await readStats(proc), { uptimeMs: 5500, load1: 1.5, memTotalBytes: 2097152, memAvailableBytes: 1048576, processes: 3 });
    const hello = helloResponse(true, proc);
    assert.equal(hello.bootId, 'b00t-1d');
    assert.equal(hello.uptimeMs, 5500);
    assert.equal(hello.workloadStarted, true);
    assert.equal(hello.nodeVersion, process.version);
  } finally {
    await rm(proc, { recursive: true, force: true });
  }
});
