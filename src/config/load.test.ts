import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigInvalidError } from '../core/errors.js';
import { loadHacFile } from './index.js';

const dir = mkdtempSync(join(tmpdir(), 'hac-load-'));
const vmDir = join(dir, 'vm');
mkdirSync(vmDir);
writeFileSync(join(vmDir, 'root.ext4'), '');
writeFileSync(join(dir, 'flag.ext4'), '');
const file = join(vmDir, 'hac.toml');
writeFileSync(file, '[spacecore]\nname = "loaded"\n[hardware]\ndrive = "root.ext4"\ncores = 2\n');

async function rejection(promise: Promise<unknown>): Promise<ConfigInvalidError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ConfigInvalidError, String(err));
    return err;
  }
  assert.fail('expected a rejection');
}

test('loadHacFile: reads the file and resolves its paths against its folder', async () => {
  const spec = await loadHacFile(file, { hostCpus: 2 });
  assert.equal(spec.name, 'loaded');
  assert.equal(spec.cores, 2);
  assert.equal(spec.drive, join(vmDir, 'root.ext4'));
});

test('loadHacFile: a relative file path is taken from cwd; overrides from cwd too', async () => {
  const spec = await loadHacFile('vm/hac.toml', { hostCpus: 2, cwd: dir, overrides: { drive: 'flag.ext4', cores: 1 } });
  assert.equal(spec.drive, join(dir, 'flag.ext4'));
  assert.equal(spec.cores, 1);
});

test('loadHacFile: problems are located in the file as the user named it', async () => {
  const err = await rejection(loadHacFile('vm/hac.toml', { hostCpus: 1, cwd: dir }));
  assert.equal(err.message, "vm/hac.toml:5:9: hardware.cores = 2: must be an integer from 1 to 1 (this host's CPUs)");
});

test('loadHacFile: a missing file is a ConfigInvalidError naming the file', async () => {
  const missing = join(dir, 'nope.toml');
  const err = await rejection(loadHacFile(missing, { hostCpus: 1 }));
  assert.equal(err.message, `${missing}: cannot read ${missing}: file not found`);
  assert.deepEqual(err.details, [{ path: '', message: `cannot read ${missing}: file not found`, location: missing }]);
});

test('loadHacFile: a directory is a ConfigInvalidError naming it', async () => {
  const err = await rejection(loadHacFile(vmDir, { hostCpus: 1 }));
  assert.equal(err.message, `${vmDir}: cannot read ${vmDir}: is a directory, not a file`);
});
