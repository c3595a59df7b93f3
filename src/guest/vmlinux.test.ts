import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { bootAssetPaths, defaultBootDir } from './boot-assets.js';
import { extractVmlinux, kernelImageKind, locatePayload, MAX_VMLINUX_BYTES } from './vmlinux.js';

/** A minimal bzImage: boot sector + `setupSects` sectors, then `payload` at `payloadOffset` into the protected-mode code. */
function fakeBzImage(payload: Buffer, options: { setupSects?: number; payloadOffset?: number; version?: number; length?: number } = {}): Buffer {
  const setupSects = options.setupSects ?? 4;
  const pm = (setupSects + 1) * 512;
  const offset = options.payloadOffset ?? 64;
  const image = Buffer.alloc(pm + offset + payload.length + 16);
  image[0x1f1] = setupSects;
  image.write('HdrS', 0x202, 'latin1');
  image.writeUInt16LE(options.version ?? 0x20f, 0x206);
  image.writeUInt32LE(offset, 0x248);
  image.writeUInt32LE(options.length ?? payload.length, 0x24c);
  payload.copy(image, pm + offset);
  return image;
}

/** An LZ4 legacy frame of `data` (made with the lz4 tool) followed by the kernel's 4-byte size trailer. */
function lz4Payload(data: Buffer, claimedSize = data.length): Buffer {
  const out = spawnSync('lz4', ['-l', '-c', '-q'], { input: data });
  assert.equal(out.status, 0, String(out.stderr));
  const trailer = Buffer.alloc(4);
  trailer.writeUInt32LE(claimedSize);
  return Buffer.concat([out.stdout, trailer]);
}

const fakeElf = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]), Buffer.alloc(200_000, 7)]);

test('kernelImageKind tells ELF from bzImage from anything else', () => {
  assert.equal(kernelImageKind(fakeElf), 'elf');
  assert.equal(kernelImageKind(fakeBzImage(Buffer.alloc(16))), 'bzimage');
  assert.equal(kernelImageKind(Buffer.from('QFI\xfb', 'latin1')), 'unknown');
  assert.equal(kernelImageKind(Buffer.alloc(0)), 'unknown');
});

test('extractVmlinux finds the payload from the setup header and decompresses it', async () => {
  const vmlinux = await extractVmlinux(fakeBzImage(lz4Payload(fakeElf), { setupSects: 27, payloadOffset: 716 }));
  assert.deepEqual(vmlinux, fakeElf);
});

test('hostile or unsupported headers get a clear error before anything is decompressed', async () => {
  const payload = lz4Payload(fakeElf);
  assert.throws(() => locatePayload(fakeElf), /not a bzImage/);
  assert.throws(() => locatePayload(fakeBzImage(payload, { version: 0x206 })), /boot protocol 2.6/);
  assert.throws(() => locatePayload(fakeBzImage(payload, { length: payload.length + 1_000_000 })), /outside the/);
  assert.throws(() => locatePayload(fakeBzImage(Buffer.concat([Buffer.from('\x1f\x8b\x08\x00'), payload]))), /not LZ4/);
  assert.throws(() => locatePayload(fakeBzImage(lz4Payload(fakeElf, MAX_VMLINUX_BYTES + 1))), /claims/);
  // A trailer that disagrees with what lz4 produced.
  await assert.rejects(extractVmlinux(fakeBzImage(lz4Payload(fakeElf, fakeElf.length + 1))), /lz4 gave/);
  // An LZ4 payload that is not an ELF.
  const text = Buffer.alloc(1000, 0x41);
  await assert.rejects(extractVmlinux(fakeBzImage(lz4Payload(text))), /not an ELF/);
});

const installed = bootAssetPaths(defaultBootDir());
test('the installed Debian cloud kernel: vmlinux extracted from vmlinuz is a PVH ELF', { skip: !existsSync(installed.kernel) && 'the guest kernel is not installed (run scripts/setup.sh)' }, async () => {
  const vmlinux = await extractVmlinux(await readFile(installed.kernel));
  assert.equal(kernelImageKind(vmlinux), 'elf');
  // The Xen PVH entry note (type 18, XEN_ELFNOTE_PHYS32_ENTRY) is what QEMU and the VMMs boot from.
  assert.ok(vmlinux.includes(Buffer.from('Xen\0')), 'the ELF carries Xen notes');
});
