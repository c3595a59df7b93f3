/**
 * Extracting the uncompressed ELF kernel (`vmlinux`) from a bzImage (`vmlinuz`), for VMMs that only
 * load ELF kernels (released Firecracker). The bzImage's setup header says where the compressed
 * payload is: `payload_offset` and `payload_length` at 0x248 (boot protocol 2.08 and later),
 * relative to the protected-mode code, which starts after the `setup_sects` 512-byte sectors of
 * setup plus the boot sector. Debian's cloud kernel compresses it with LZ4 (legacy frame), and
 * the kernel's build appends the uncompressed size as 4 little-endian bytes, which lz4 would read
 * as a broken block: they are cut off and checked against the output instead.
 */
import { mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProviderFailedError } from '../core/errors.js';
import { runCommand } from '../system/command.js';

/** Largest vmlinux accepted (Debian's is ~53 MB). */
export const MAX_VMLINUX_BYTES = 512 * 1024 * 1024;
const LZ4_LEGACY_MAGIC = 0x184c2102;
const ELF_MAGIC = 0x7f454c46;

/** What the first bytes of a kernel image say it is. */
export type KernelImageKind = 'elf' | 'bzimage' | 'unknown';

/** Sniffs a kernel image from its first 0x210 bytes or more: ELF magic, or "HdrS" at 0x202. */
export function kernelImageKind(head: Buffer): KernelImageKind {
  if (head.length >= 4 && head.readUInt32BE(0) === ELF_MAGIC) return 'elf';
  if (head.length >= 0x206 && head.toString('latin1', 0x202, 0x206) === 'HdrS') return 'bzimage';
  return 'unknown';
}

/** Reads the head of a kernel file and sniffs it. */
export async function sniffKernelFile(path: string): Promise<KernelImageKind> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(0x210);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return kernelImageKind(buffer.subarray(0, bytesRead));
  } finally {
    await handle.close();
  }
}

/** Where the compressed payload of a bzImage is, and its uncompressed size; throws on a header it cannot trust. */
export function locatePayload(bzImage: Buffer): { start: number; length: number; uncompressedSize: number } {
  const fail = (why: string): never => {
    throw new ProviderFailedError(`cannot extract vmlinux: ${why}`);
  };
  if (kernelImageKind(bzImage) !== 'bzimage') fail('not a bzImage (no "HdrS" setup header at 0x202)');
  const version = bzImage.readUInt16LE(0x206);
  if (version < 0x208) fail(`boot protocol ${version >> 8}.${version & 0xff} has no payload fields (2.08 or later needed)`);
  const setupSects = bzImage[0x1f1] || 4;
  const start = (setupSects + 1) * 512 + bzImage.readUInt32LE(0x248);
  const length = bzImage.readUInt32LE(0x24c);
  if (length < 8 || start + length > bzImage.length) fail(`payload (offset ${start}, ${length} bytes) lies outside the ${bzImage.length}-byte file`);
  if (bzImage.readUInt32LE(start) !== LZ4_LEGACY_MAGIC) fail('the payload is not LZ4 (legacy frame); only LZ4-compressed kernels are supported');
  const uncompressedSize = bzImage.readUInt32LE(start + length - 4);
  if (uncompressedSize === 0 || uncompressedSize > MAX_VMLINUX_BYTES) fail(`the payload claims ${uncompressedSize} uncompressed bytes (at most ${MAX_VMLINUX_BYTES})`);
  return { start, length, uncompressedSize };
}

/** Extracts vmlinux from a bzImage with `lz4`; checks its size and ELF magic. */
export async function extractVmlinux(bzImage: Buffer): Promise<Buffer> {
  const { start, length, uncompressedSize } = locatePayload(bzImage);
  const work = await mkdtemp(join(tmpdir(), 'hc-vmlinux-'));
  try {
    const payload = join(work, 'payload.lz4');
    const out = join(work, 'vmlinux');
    await writeFile(payload, bzImage.subarray(start, start + length - 4));
    await runCommand('lz4', ['-d', '-q', '-f', payload, out], { timeoutMs: 120_000 });
    // Checked before reading: lz4 stops at the frame's end, but a frame could still claim too much.
    const size = (await stat(out)).size;
    if (size !== uncompressedSize) throw new ProviderFailedError(`cannot extract vmlinux: lz4 gave ${size} bytes, the kernel's trailer says ${uncompressedSize}`);
    const vmlinux = await readFile(out);
    if (kernelImageKind(vmlinux) !== 'elf') throw new ProviderFailedError('cannot extract vmlinux: the decompressed payload is not an ELF file');
    return vmlinux;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
