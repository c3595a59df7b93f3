/**
 * Every create checks that QEMU runs; the provider asks the binary for its version once per binary
 * file, not once per create (a QEMU process costs tens of milliseconds, more on a busy host).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProviderUnavailableError } from '../../core/errors.js';
import type { VmSpec } from '../../core/vm.js';
import { QemuProvider } from './qemu-provider.js';

const dir = mkdtempSync(join(tmpdir(), 'hc-qemu-version-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const silent = { info() {}, warn() {}, error() {}, debug() {}, child() { return silent; } };
const runs = join(dir, 'runs.log');
const binary = join(dir, 'fake-qemu');

function fakeQemu(version: string): void {
  writeFileSync(binary, `#!/bin/sh\necho run >> ${runs}\necho "QEMU emulator version ${version}"\n`, { mode: 0o755 });
}
const runCount = (): number => readFileSync(runs, 'utf8').split('\n').filter(Boolean).length;
const spec = (path: string) => ({ name: 'v', hypervisor: { qemu: { binary: path, accel: 'tcg' } } }) as unknown as VmSpec;

test('checkAvailable runs QEMU once per binary file, and again when the file changes', async () => {
  fakeQemu('7.2.0');
  const provider = new QemuProvider({ logger: silent, workDir: join(dir, 'probe') });
  for (let i = 0; i < 5; i++) await provider.checkAvailable(spec(binary));
  assert.equal(runCount(), 1);
  // A new binary in its place (an upgrade): asked again.
  rmSync(binary);
  fakeQemu('8.0.0');
  await provider.checkAvailable(spec(binary));
  await provider.checkAvailable(spec(binary));
  assert.equal(runCount(), 2);
});

test('a missing or failing binary is unavailable every time, never cached as good', async () => {
  const provider = new QemuProvider({ logger: silent, workDir: join(dir, 'probe') });
  for (let i = 0; i < 2; i++) await assert.rejects(provider.checkAvailable(spec(join(dir, 'no-qemu'))), ProviderUnavailableError);
  const failing = join(dir, 'failing-qemu');
  writeFileSync(failing, '#!/bin/sh\necho broken >&2\nexit 1\n', { mode: 0o755 });
  for (let i = 0; i < 2; i++) await assert.rejects(provider.checkAvailable(spec(failing)), /QEMU is not usable: .*broken/);
});
