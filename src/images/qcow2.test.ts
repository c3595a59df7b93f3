import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { InvalidArgumentError } from '../core/errors.js';
import { writeQcow2Overlay } from './qcow2.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const dir = mkdtempSync(join(tmpdir(), 'hc-qcow2-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const base = join(dir, 'base.raw');
writeFileSync(base, '');
truncateSync(base, 64 * MiB);

let seq = 0;
const fresh = (): string => join(dir, `overlay-${++seq}.qcow2`);

interface ImageInfo {
  format: string;
  'virtual-size': number;
  'backing-filename'?: string;
  'backing-filename-format'?: string;
  'format-specific'?: { data?: { 'lazy-refcounts'?: boolean; compat?: string; 'refcount-bits'?: number } };
}

function info(path: string): ImageInfo {
  return JSON.parse(execFileSync('qemu-img', ['info', '--output=json', path], { encoding: 'utf8' })) as ImageInfo;
}

/** `qemu-img check`: exit 0 and no errors, leaks or corruptions in its JSON report. */
function check(path: string): { status: number | null; report: Record<string, unknown> } {
  const r = spawnSync('qemu-img', ['check', '--output=json', path], { encoding: 'utf8' });
  return { status: r.status, report: JSON.parse(r.stdout || '{}') as Record<string, unknown> };
}

function assertClean(path: string): void {
  const { status, report } = check(path);
  assert.equal(status, 0, `qemu-img check ${path}: ${JSON.stringify(report)}`);
  for (const key of ['corruptions', 'leaks', 'check-errors']) assert.equal(report[key] ?? 0, 0, `${key} in ${JSON.stringify(report)}`);
}

test('an overlay passes qemu-img check and reads as its backing file, at any size', async () => {
  for (const size of [64 * MiB, GiB, 4 * GiB, 100 * GiB, 3 * 1024 * GiB]) {
    const path = fresh();
    await writeQcow2Overlay(path, { backingFile: base, backingFormat: 'raw', virtualSize: size, lazyRefcounts: true });
    assertClean(path);
    const i = info(path);
    assert.equal(i.format, 'qcow2');
    assert.equal(i['virtual-size'], size);
    assert.equal(i['backing-filename'], base);
    assert.equal(i['backing-filename-format'], 'raw');
    assert.equal(i['format-specific']?.data?.compat, '1.1');
    assert.equal(i['format-specific']?.data?.['lazy-refcounts'], true);
    assert.equal(i['format-specific']?.data?.['refcount-bits'], 16);
    assert.ok(statSync(path).blocks * 512 <= 64 * 1024, `${size}: only the header's pages are allocated (${statSync(path).blocks * 512} bytes)`);
  }
});

test('the header and tables are those qemu-img create writes (but the optional feature name table)', async () => {
  const ours = fresh();
  const theirs = fresh();
  await writeQcow2Overlay(ours, { backingFile: base, backingFormat: 'raw', virtualSize: 4 * GiB, lazyRefcounts: true });
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'lazy_refcounts=on', '-b', base, '-F', 'raw', theirs, String(4 * GiB)]);
  const a = readFileSync(ours);
  const b = readFileSync(theirs);
  assert.equal(a.length, b.length, 'same file size: same L1 table position and length');
  // The header fields up to header_length, apart from the backing name offset (qemu-img's feature table moves it).
  const header = (buf: Buffer) => Buffer.concat([buf.subarray(0, 8), buf.subarray(16, 112)]);
  assert.deepEqual(header(a), header(b));
  const nameOf = (buf: Buffer) => buf.subarray(Number(buf.readBigUInt64BE(8)), Number(buf.readBigUInt64BE(8)) + buf.readUInt32BE(16)).toString();
  assert.equal(nameOf(a), nameOf(b));
  // Refcount table, refcount block and L1 table: byte for byte.
  assert.deepEqual(a.subarray(64 * 1024), b.subarray(64 * 1024));
});

test('QEMU writes through the overlay, the backing file stays unchanged, and the image stays consistent', async () => {
  const backing = join(dir, 'patterned.raw');
  writeFileSync(backing, Buffer.alloc(8 * MiB, 0x5a));
  const path = fresh();
  await writeQcow2Overlay(path, { backingFile: backing, backingFormat: 'raw', virtualSize: 16 * MiB });
  const io = (cmd: string) => execFileSync('qemu-io', ['-f', 'qcow2', '-c', cmd, path], { encoding: 'utf8' });
  io('write -P 0xab 1M 128k');
  io('write -P 0xcd 12M 64k');
  assert.match(io('read -P 0x5a 0 1M'), /read 1048576\/1048576 bytes/, 'unwritten ranges read from the backing file');
  assert.match(io('read -P 0xab 1M 128k'), /read 131072\/131072 bytes/);
  assert.match(io('read -P 0 8M 1M'), /read 1048576\/1048576 bytes/, 'past the backing file the disk reads as zeros');
  assert.match(io('read -P 0xcd 12M 64k'), /read 65536\/65536 bytes/);
  assertClean(path);
  assert.ok(readFileSync(backing).every((b) => b === 0x5a), 'the backing file is untouched');
});

// The fastest of 20 runs: the cost of the work itself, not of a busy shared host.
test('writing an overlay takes well under the 5 ms budget and does not grow with the size', async () => {
  const fastest = async (size: number): Promise<number> => {
    const out: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      await writeQcow2Overlay(fresh(), { backingFile: base, backingFormat: 'raw', virtualSize: size });
      out.push(performance.now() - t0);
    }
    return Math.min(...out);
  };
  const small = await fastest(256 * MiB);
  const large = await fastest(1024 * GiB);
  assert.ok(small < 5 && large < 5, `fastest ${small.toFixed(2)} ms (256 MiB), ${large.toFixed(2)} ms (1 TiB)`);
});

test('bad input is refused with the culprit named, and no file is left', async () => {
  const cases: [string, Parameters<typeof writeQcow2Overlay>[1], RegExp][] = [
    ['relative', { backingFile: 'base.raw', backingFormat: 'raw', virtualSize: MiB }, /must be an absolute path/],
    ['odd size', { backingFile: base, backingFormat: 'raw', virtualSize: MiB + 1 }, /virtual size 1048577 must be a positive multiple of 512/],
    ['zero', { backingFile: base, backingFormat: 'raw', virtualSize: 0 }, /positive multiple of 512/],
    ['huge', { backingFile: base, backingFormat: 'raw', virtualSize: 2 ** 52 }, /larger than QEMU can address/],
    ['long name', { backingFile: `/${'a'.repeat(1100)}`, backingFormat: 'raw', virtualSize: MiB }, /longer than 1023 bytes/],
    ['NUL', { backingFile: '/x\0y', backingFormat: 'raw', virtualSize: MiB }, /NUL byte/],
  ];
  for (const [what, options, message] of cases) {
    const path = fresh();
    await assert.rejects(writeQcow2Overlay(path, options), (err: unknown) => err instanceof InvalidArgumentError && message.test(err.message), what);
    assert.equal(existsSync(path), false, what);
  }
  const taken = fresh();
  writeFileSync(taken, 'mine');
  await assert.rejects(writeQcow2Overlay(taken, { backingFile: base, backingFormat: 'raw', virtualSize: MiB }), /EEXIST/);
  assert.equal(readFileSync(taken, 'utf8'), 'mine', 'an existing file is never overwritten');
});
