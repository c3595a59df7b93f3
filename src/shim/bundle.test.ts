import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_SPEC_BYTES, numberAnnotation, podRole, readBundleSpec } from './bundle.js';

function bundle(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hc-bundle-'));
  mkdirSync(join(dir, 'b'));
  return dir;
}

test('config.json is read whole and parsed; a symlink, an oversized file or non-JSON is refused with the path', async () => {
  const dir = bundle();
  try {
    const b = join(dir, 'b');
    writeFileSync(join(dir, 'elsewhere.json'), '{"process":{"args":["sh"]}}');
    symlinkSync(join(dir, 'elsewhere.json'), join(b, 'config.json'));
    await assert.rejects(readBundleSpec(b), /config\.json cannot be opened: ELOOP/);
    rmSync(join(b, 'config.json'));
    writeFileSync(join(b, 'config.json'), Buffer.alloc(MAX_SPEC_BYTES + 1, 0x20));
    await assert.rejects(readBundleSpec(b), /is 4194305 bytes, more than 4194304/);
    writeFileSync(join(b, 'config.json'), '{"process":');
    await assert.rejects(readBundleSpec(b), /is not JSON/);
    writeFileSync(join(b, 'config.json'), '[]');
    await assert.rejects(readBundleSpec(b), /is not a JSON object/);
    writeFileSync(join(b, 'config.json'), '{"process":{"args":["sh"]}}');
    assert.deepEqual(await readBundleSpec(b), { process: { args: ['sh'] } });
    await assert.rejects(readBundleSpec('relative'), /must be an absolute path/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("CRI's annotations decide the pod; pod annotations size the VM, bad values named", () => {
  assert.deepEqual(podRole({}), { kind: 'sandbox' });
  assert.deepEqual(podRole({ annotations: { 'io.kubernetes.cri.container-type': 'sandbox' } }), { kind: 'sandbox' });
  assert.deepEqual(podRole({ annotations: { 'io.kubernetes.cri.container-type': 'container', 'io.kubernetes.cri.sandbox-id': 'abc' } }), { kind: 'container', sandboxId: 'abc' });
  assert.throws(() => podRole({ annotations: { 'io.kubernetes.cri.container-type': 'container' } }), /without the io\.kubernetes\.cri\.sandbox-id annotation/);
  assert.equal(numberAnnotation({ annotations: { 'io.hypercore.vm.memory-mib': '512' } }, 'io.hypercore.vm.memory-mib', 1024), 512);
  assert.throws(() => numberAnnotation({ annotations: { 'io.hypercore.vm.memory-mib': '1e9' } }, 'io.hypercore.vm.memory-mib', 1024), /must be a whole number from 1 to 1024/);
});
