import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

test('a process whose main thread exited while another thread runs on is alive until that thread ends', async () => {
  // The leader calls the exit syscall (one thread, not exit_group): it shows Z while its second
  // thread, which holds the process's files, sleeps 0.6 s more. A VMM stopping looks like this.
  const dir = mkdtempSync(join(tmpdir(), 'hc-leader-'));
  try {
    writeFileSync(
      join(dir, 'leader.c'),
      [
        '#include <pthread.h>',
        '#include <stdio.h>',
        '#include <sys/syscall.h>',
        '#include <unistd.h>',
        'static void *linger(void *arg) { (void)arg; usleep(600000); return NULL; }',
        'int main(void) { pthread_t t; pthread_create(&t, NULL, linger, NULL); usleep(100000); syscall(SYS_exit, 0); return 0; }',
      ].join('\n'),
    );
    execFileSync('gcc', ['-pthread', '-o', join(dir, 'leader'), join(dir, 'leader.c')]);
    const child = spawn(join(dir, 'leader'), [], { stdio: 'ignore' });
    const pid = child.pid!;
    const exited = new Promise((r) => child.once('exit', r));
    for (let i = 0; i < 40 && (await stateOf(pid)) !== 'Z'; i++) await new Promise((r) => setTimeout(r, 25));
    assert.equal(await stateOf(pid), 'Z', 'the leader exited');
    assert.equal(await isAlive(pid), true, 'its other thread still runs');
    assert.equal(await waitForExit(pid, 5_000), true, 'gone once that thread ended');
    await exited;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
