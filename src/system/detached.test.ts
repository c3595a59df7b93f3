import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ErrorCodes, type HypercoreError } from '../core/errors.js';
import { launchDetached } from './detached.js';
import { watchPid } from './pid-watch.js';
import { isAlive } from './process.js';

const dir = mkdtempSync(join(tmpdir(), 'hc-detached-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a detached program runs in its own session, writes its output to files, and its pidfile holds its pid', async () => {
  const marker = `hc-detached-test-${process.pid}`;
  const { pid } = await launchDetached({ file: 'sh', args: ['-c', `echo out; echo err >&2; exec sleep 30`, marker], stdoutPath: join(dir, 'out.log'), stderrPath: join(dir, 'err.log'), pidFile: join(dir, 'x.pid') });
  try {
    assert.equal(readFileSync(join(dir, 'x.pid'), 'utf8'), `${pid}\n`);
    assert.equal(statSync(join(dir, 'x.pid')).mode & 0o777, 0o600);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').slice(readFileSync(`/proc/${pid}/stat`, 'utf8').lastIndexOf(')') + 2).split(' ');
    assert.equal(Number(stat[3]), pid, 'it leads its own session (sid = pid)');
    for (let i = 0; i < 50 && !readFileSync(join(dir, 'err.log'), 'utf8'); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(readFileSync(join(dir, 'out.log'), 'utf8'), 'out\n');
    assert.equal(readFileSync(join(dir, 'err.log'), 'utf8'), 'err\n');

    // The watcher's timer does not keep a daemon alive; this test keeps itself alive while it waits.
    const keepAlive = setInterval(() => undefined, 1000);
    const gone = new Promise<void>((resolve) => watchPid(pid, 'sleep', resolve, 50));
    process.kill(pid, 'SIGKILL');
    await gone;
    clearInterval(keepAlive);
    assert.equal(await isAlive(pid), false);
  } finally {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

test('a program that cannot start is a clear error and leaves no pidfile', async () => {
  await assert.rejects(launchDetached({ file: join(dir, 'no-such-vmm'), args: [], stdoutPath: join(dir, 'o'), stderrPath: join(dir, 'o'), pidFile: join(dir, 'none.pid') }), (err: HypercoreError) => err.code === ErrorCodes.commandFailed && /executable not found/.test(err.message));
  assert.throws(() => statSync(join(dir, 'none.pid')));
});
