import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCodes, ProviderUnavailableError } from '../../core/errors.js';
import { ACCEL_BIOS_SIZE, PROBE_EXIT_STATUS, RESET_VECTOR_OFFSET, buildAccelBios } from './accel-bios.js';
import { chooseAccel, clearAccelCache, probeAccel, resolveAccel, runAccelProbe, type KvmAccess } from './accel-probe.js';

const QEMU = 'qemu-system-x86_64';
const usable: KvmAccess = { usable: true };

describe('buildAccelBios', () => {
  test('is 64 KiB with a far jump to F000:0000 at the reset vector and the loop count at offset 3', () => {
    const img = buildAccelBios(0x01020304);
    assert.equal(img.length, ACCEL_BIOS_SIZE);
    assert.equal(ACCEL_BIOS_SIZE - RESET_VECTOR_OFFSET, 16, 'reset vector = last 16 bytes');
    assert.deepEqual([...img.subarray(0xfff0, 0xfff5)], [0xea, 0x00, 0x00, 0x00, 0xf0]);
    // cli; mov ecx, imm32
    assert.deepEqual([...img.subarray(0, 3)], [0xfa, 0x66, 0xb9]);
    assert.equal(img.readUInt32LE(3), 0x01020304);
    // dec ecx; jnz -4; mov al,0x2a; out 0xf4,al; hlt
    assert.deepEqual([...img.subarray(7, 16)], [0x66, 0x49, 0x75, 0xfc, 0xb0, 0x2a, 0xe6, 0xf4, 0xf4]);
    assert.equal(PROBE_EXIT_STATUS, 85);
    assert.equal(img[0xffff], 0xf4, 'padding is hlt');
  });

  test('rejects iteration counts that would wrap or do not fit', () => {
    assert.throws(() => buildAccelBios(0), RangeError);
    assert.throws(() => buildAccelBios(2 ** 32), RangeError);
    assert.throws(() => buildAccelBios(1.5), RangeError);
  });
});

describe('chooseAccel', () => {
  const tcg = { ok: true as const, ms: 100 };
  test('keeps kvm when it is not slower than tcg (start-up noise allowed)', () => {
    assert.equal(chooseAccel(tcg, { ok: true, ms: 60 }, usable, 3000).accel, 'kvm');
    assert.equal(chooseAccel(tcg, { ok: true, ms: 170 }, usable, 3000).accel, 'kvm');
    const d = chooseAccel(tcg, { ok: true, ms: 60 }, usable, 3000);
    assert.deepEqual([d.kvmMs, d.tcgMs], [60, 100]);
  });

  test('falls back to tcg when kvm is slow, timed out, failed or unusable', () => {
    const slow = chooseAccel(tcg, { ok: true, ms: 400 }, usable, 3000);
    assert.equal(slow.accel, 'tcg');
    assert.match(slow.reason, /slower than tcg/);
    const timedOut = chooseAccel(tcg, { ok: false, ms: 3001, timedOut: true, reason: 'timed out' }, usable, 3000);
    assert.equal(timedOut.accel, 'tcg');
    assert.match(timedOut.reason, /within 3000 ms/);
    assert.equal(timedOut.kvmMs, undefined);
    const missing = chooseAccel(tcg, undefined, { usable: false, missing: true, reason: '/dev/kvm does not exist' }, 3000);
    assert.deepEqual(missing, { accel: 'tcg', reason: '/dev/kvm does not exist', tcgMs: 100 });
  });

  test('uses kvm if only tcg failed, and is unavailable if both failed', () => {
    const tcgFailed = { ok: false as const, ms: 5, timedOut: false, reason: 'boom' };
    assert.equal(chooseAccel(tcgFailed, { ok: true, ms: 50 }, usable, 3000).accel, 'kvm');
    assert.throws(() => chooseAccel(tcgFailed, { ok: false, ms: 5, timedOut: false, reason: 'bang' }, usable, 3000), ProviderUnavailableError);
  });
});

describe('probes with the real QEMU', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hc-accel-'));
  });
  after(async () => {
    clearAccelCache();
    await rm(dir, { recursive: true, force: true });
  });

  test('the tcg probe boots the image and exits through isa-debug-exit', { timeout: 30_000 }, async () => {
    const bios = join(dir, 'fast.bin');
    await writeFile(bios, buildAccelBios(1000));
    const run = await runAccelProbe(QEMU, 'tcg', bios, 10_000);
    assert.equal(run.ok, true, JSON.stringify(run));
    assert.ok(run.ms > 0 && run.ms < 10_000);
  });

  test('a QEMU error (exit status 1, e.g. unreadable BIOS) is a failed probe, not a success', { timeout: 30_000 }, async () => {
    const run = await runAccelProbe(QEMU, 'tcg', join(dir, 'absent.bin'), 10_000);
    assert.equal(run.ok, false);
    assert.match(!run.ok ? run.reason : '', /could not load PC BIOS/);
  });

  test('a guest that runs too long is killed at the timeout', { timeout: 30_000 }, async () => {
    const bios = join(dir, 'slow.bin');
    await writeFile(bios, buildAccelBios(0xffffffff)); // ~6 s under TCG here
    const run = await runAccelProbe(QEMU, 'tcg', bios, 300);
    assert.equal(run.ok, false);
    assert.equal(!run.ok && run.timedOut, true, JSON.stringify(run));
    assert.ok(run.ms < 3000);
  });

  test('probeAccel without a KVM device picks tcg after timing it, and cleans up', { timeout: 30_000 }, async () => {
    const workDir = join(dir, 'work');
    const d = await probeAccel({ qemuBinary: QEMU, workDir, kvmDevice: join(dir, 'no-kvm') });
    assert.equal(d.accel, 'tcg');
    assert.match(d.reason, /does not exist/);
    assert.ok(d.tcgMs !== undefined && d.tcgMs > 0);
    assert.equal(d.kvmMs, undefined);
    assert.deepEqual(await readdir(workDir), [], 'temporary BIOS removed');
  });

  test('resolveAccel: tcg as is, kvm without a device is unavailable, auto is cached per binary', { timeout: 30_000 }, async () => {
    const opts = { qemuBinary: QEMU, workDir: join(dir, 'resolve'), kvmDevice: join(dir, 'no-kvm') };
    assert.equal((await resolveAccel('tcg', opts)).accel, 'tcg');
    await assert.rejects(resolveAccel('kvm', opts), (err: unknown) => {
      assert.ok(err instanceof ProviderUnavailableError);
      assert.equal(err.code, ErrorCodes.providerUnavailable);
      assert.match(err.message, /accel = "kvm".*does not exist/);
      return true;
    });
    const first = await resolveAccel('auto', opts);
    const second = await resolveAccel('auto', opts);
    assert.equal(second, first, 'the same decision object comes from the cache');
  });

  test('resolveAccel auto with a missing binary is unavailable and not cached', { timeout: 30_000 }, async () => {
    const opts = { qemuBinary: join(dir, 'no-qemu'), workDir: join(dir, 'missing'), kvmDevice: join(dir, 'no-kvm') };
    await assert.rejects(resolveAccel('auto', opts), ProviderUnavailableError);
    await assert.rejects(resolveAccel('auto', opts), /QEMU cannot run a minimal guest/);
  });
});
