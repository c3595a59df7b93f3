import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileLength, launchFailureTail } from './api-vmm.js';

test("launchFailureTail: only what was written since the launch, on one line; a rotated file is read from its start", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-api-vmm-'));
  try {
    const log = join(dir, 'console.log');
    assert.equal(await fileLength(log), 0);
    await writeFile(log, 'an earlier boot\nreboot: Power down\n');
    const since = await fileLength(log);
    assert.equal(await launchFailureTail(log, since), '');
    await appendFile(log, 'Error booting VM:\n  disk: No such file\n');
    assert.equal(await launchFailureTail(log, since), 'Error booting VM: disk: No such file');
    await writeFile(log, 'after rotation\n');
    assert.equal(await launchFailureTail(log, since), 'after rotation');
    await appendFile(log, `${'x'.repeat(10_000)}\nlast words\n`);
    assert.ok((await launchFailureTail(log, 0)).endsWith('last words'));
    assert.ok((await launchFailureTail(log, 0)).length <= 1500);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
