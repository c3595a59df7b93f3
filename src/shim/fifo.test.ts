import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkStdioPath, openFifo } from './fifo.js';

test('a stdout "FIFO" that is a regular file, or a symlink to one, is refused and never written', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hc-fifo-'));
  try {
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'precious\n');
    await assert.rejects(openFifo(victim, 'write'), /is not a FIFO/);
    const link = join(dir, 'link');
    symlinkSync(victim, link);
    await assert.rejects(openFifo(link, 'write'), /cannot be opened: ELOOP/);
    assert.equal(readFileSync(victim, 'utf8'), 'precious\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a real FIFO opens at once, even with nobody at the other end, and carries the bytes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hc-fifo-'));
  try {
    const path = join(dir, 'out');
    execFileSync('mkfifo', [path]);
    const writer = await openFifo(path, 'write');
    const reader = await openFifo(path, 'read');
    const got = new Promise<string>((resolve) => reader.once('data', (d: Buffer) => resolve(d.toString())));
    writer.write('hello');
    assert.equal(await got, 'hello');
    writer.destroy();
    reader.destroy();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stdio URIs and relative paths are refused; empty means none', () => {
  assert.doesNotThrow(() => checkStdioPath('stdout', ''));
  assert.throws(() => checkStdioPath('stdout', 'binary:///usr/bin/logger'), /stdio URIs are not supported/);
  assert.throws(() => checkStdioPath('stdout', 'out.fifo'), /must be an absolute path/);
});
