import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { isAlive, isOurProcess, waitForExit } from './process.js';

/** State letter of /proc/PID/stat. */
async function stateOf(pid: number): Promise<string> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}

test('a zombie (exited, not yet reaped by its parent) counts as gone', async () => {
  // sh starts a short sleep in the background, then becomes a long sleep that never reaps it.
  const parent = spawn('sh', ['-c', 'sleep 0.2 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const zombie = Number.parseInt(await new Promise<string>((resolve) => parent.stdout.once('data', (c: Buffer) => resolve(c.toString()))), 10);
    assert.equal(await isAlive(zombie), true, 'alive while it sleeps');
    for (let i = 0; i < 50 && (await stateOf(zombie)) !== 'Z'; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(await stateOf(zombie), 'Z', 'the child is a zombie now');
    assert.equal(await isAlive(zombie), false);
    assert.equal(await isOurProcess(zombie, 'sleep'), false);
    assert.equal(await waitForExit(zombie, 100), true);
  } finally {
    parent.kill('SIGKILL');
  }
});
