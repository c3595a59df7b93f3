import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_DISK_SIZE_MIB } from '../core/vm.js';
import { createVmImageDisks } from './vm-disks.js';

const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'hc-vmdisks-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const base = join(dir, 'base.ext4');
writeFileSync(base, '');
truncateSync(base, 32 * MiB);

function stateDir(name: string): string {
  const d = join(dir, name);
  mkdirSync(d);
  return d;
}

test('a workload VM gets the read-only image and an ext4 scratch disk of exactly disk_size, even when the VMM reads qcow2', async () => {
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
  const info = (path: string) => JSON.parse(execFileSync('qemu-img', ['info', '--output=json', '-U', path], { encoding: 'utf8' })) as { 'virtual-size': number };
  assert.equal(info(small[0]!.path)['virtual-size'], 32 * MiB, 'never smaller than the image');
  const large = await createVmImageDisks(base, stateDir('drive-large'), { formats: ['raw', 'qcow2'], sizeMib: 256, workload: false });
  assert.equal(info(large[0]!.path)['virtual-size'], 256 * MiB);
});

test('without qcow2 a drive VM gets the image plus a scratch disk too', async () => {
  const disks = await createVmImageDisks(base, stateDir('raw-only'), { formats: ['raw'], sizeMib: 64, workload: false });
  assert.deepEqual(disks.map((d) => d.name), ['image', 'scratch']);
  assert.equal(statSync(disks[1]!.path).size, 64 * MiB);
});
