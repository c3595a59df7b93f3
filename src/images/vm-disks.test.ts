import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DEFAULT_DISK_SIZE_MIB } from '../core/vm.js';
import { createVmImageDisks, scratchTemplate } from './vm-disks.js';

const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'hc-vmdisks-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const base = join(dir, 'base.ext4');
writeFileSync(base, '');
truncateSync(base, 32 * MiB);

const info = (path: string) => JSON.parse(execFileSync('qemu-img', ['info', '--output=json', path], { encoding: 'utf8' })) as { format: string; 'virtual-size': number; 'backing-filename'?: string };
const check = (path: string) => execFileSync('qemu-img', ['check', path], { encoding: 'utf8' });

function stateDir(name: string): string {
  const d = join(dir, name);
  mkdirSync(d);
  return d;
}

test('a workload VM gets the read-only image and an ext4 scratch disk of exactly disk_size, formatted anew without a templates directory', async () => {
  const disks = await createVmImageDisks(base, stateDir('default'), { formats: ['raw', 'qcow2'], sizeMib: DEFAULT_DISK_SIZE_MIB, workload: true });
  assert.deepEqual(disks.map((d) => [d.name, d.format, d.readOnly]), [['image', 'raw', true], ['scratch', 'raw', false]]);
  assert.equal(disks[0]!.path, base);
  const scratch = statSync(disks[1]!.path);
  assert.equal(scratch.size, 4096 * MiB, 'the default leaves 4 GiB of room');
  assert.ok(scratch.blocks * 512 < 8 * MiB, `formatting wrote only metadata (${scratch.blocks * 512} bytes)`);
  const header = execFileSync('dumpe2fs', ['-h', disks[1]!.path], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  assert.match(header, /Filesystem volume name:\s+hc-scratch/);
  assert.match(header, /Reserved block count:\s+0\n/);
  assert.match(header, /Block count:\s+1048576\n/);
});

test('a VM booting its own drive gets one qcow2 overlay whose virtual size is the larger of image and disk_size', async () => {
  const small = await createVmImageDisks(base, stateDir('drive-small'), { formats: ['raw', 'qcow2'], sizeMib: 16, workload: false });
  assert.deepEqual(small.map((d) => [d.name, d.format, d.readOnly]), [['image', 'qcow2', false]]);
  assert.equal(small[0]!.backing, base, 'the overlay records the block image it was made over');
  assert.equal(info(small[0]!.path)['virtual-size'], 32 * MiB, 'never smaller than the image');
  assert.equal(info(small[0]!.path)['backing-filename'], base);
  assert.match(check(small[0]!.path), /No errors were found/);
  const large = await createVmImageDisks(base, stateDir('drive-large'), { formats: ['raw', 'qcow2'], sizeMib: 256, workload: false });
  assert.equal(info(large[0]!.path)['virtual-size'], 256 * MiB);
});

test('without qcow2 a drive VM gets the image plus a scratch disk too', async () => {
  const disks = await createVmImageDisks(base, stateDir('raw-only'), { formats: ['raw'], sizeMib: 64, workload: false });
  assert.deepEqual(disks.map((d) => d.name), ['image', 'scratch']);
  assert.equal(statSync(disks[1]!.path).size, 64 * MiB);
});

test("with qcow2 and a templates directory, a workload VM's scratch disk is an overlay of a formatted template of exactly disk_size", async () => {
  const templates = join(dir, 'templates');
  const disks = await createVmImageDisks(base, stateDir('templated'), { formats: ['raw', 'qcow2'], sizeMib: 256, workload: true }, { scratchTemplates: templates });
  assert.deepEqual(disks.map((d) => [d.name, d.format, d.readOnly]), [['image', 'raw', true], ['scratch', 'qcow2', false]]);
  const scratch = info(disks[1]!.path);
  assert.equal(scratch['virtual-size'], 256 * MiB, 'the guest can write exactly disk_size');
  const template = scratch['backing-filename']!;
  assert.equal(template, await scratchTemplate(templates, 256 * MiB));
  assert.match(check(disks[1]!.path), /No errors were found/);
  assert.equal(statSync(template).mode & 0o777, 0o400, 'the template is read-only');
  assert.equal(statSync(template).size, 256 * MiB);
  const header = execFileSync('dumpe2fs', ['-h', template], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  assert.match(header, /Filesystem volume name:\s+hc-scratch/);
  assert.match(header, /Reserved block count:\s+0\n/);
  // A second VM of the same size shares the template; one of another size gets its own.
  const again = await createVmImageDisks(base, stateDir('templated-2'), { formats: ['raw', 'qcow2'], sizeMib: 256, workload: true }, { scratchTemplates: templates });
  assert.equal(info(again[1]!.path)['backing-filename'], template);
  const other = await createVmImageDisks(base, stateDir('templated-3'), { formats: ['raw', 'qcow2'], sizeMib: 128, workload: true }, { scratchTemplates: templates });
  assert.notEqual(info(other[1]!.path)['backing-filename'], template);
  assert.deepEqual(readdirSync(templates).sort(), ['scratch-v1-134217728.ext4', 'scratch-v1-268435456.ext4'], 'no temporary files are left');
});

test('concurrent creates of one size build one template', async () => {
  const templates = join(dir, 'templates-race');
  const made = await Promise.all([1, 2, 3, 4].map((i) => createVmImageDisks(base, stateDir(`race-${i}`), { formats: ['raw', 'qcow2'], sizeMib: 64, workload: true }, { scratchTemplates: templates })));
  assert.equal(new Set(made.map((d) => info(d[1]!.path)['backing-filename'])).size, 1);
  assert.deepEqual(readdirSync(templates), ['scratch-v1-67108864.ext4']);
});

// The fastest of several runs: the cost of the work itself, not of a busy shared host (a qemu-img
// process alone takes 20-30 ms).
test('per-VM disk creation is flat in the disk size and under 5 ms once the template exists', async () => {
  const templates = join(dir, 'templates-time');
  const fastest = async (label: string, options: { sizeMib: number; workload: boolean }): Promise<number> => {
    const samples: number[] = [];
    for (let i = -1; i < 15; i++) {
      const d = stateDir(`time-${label}-${i + 1}`);
      const t0 = performance.now();
      await createVmImageDisks(base, d, { formats: ['raw', 'qcow2'], ...options }, { scratchTemplates: templates });
      if (i >= 0) samples.push(performance.now() - t0); // the first call builds the template
    }
    return Math.min(...samples);
  };
  const results = [await fastest('drive-256', { sizeMib: 256, workload: false }), await fastest('drive-4g', { sizeMib: 4096, workload: false }), await fastest('work-256', { sizeMib: 256, workload: true }), await fastest('work-4g', { sizeMib: 4096, workload: true })];
  assert.ok(results.every((ms) => ms < 5), `fastest: ${results.map((ms) => ms.toFixed(2)).join(', ')} ms`);
});
