import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findRelays, parseVsockPort, relayArguments, VsockRelay } from './vsock-relay.js';

test('vsock ports: digits in 1..2^32-2 only', () => {
  assert.equal(parseVsockPort('1024'), 1024);
  for (const bad of ['', '0', '-1', '1024x', '4294967295', '99999999999', '1e3', ' 1024']) assert.throws(() => parseVsockPort(bad), /not a vsock port/, bad);
});

test('relay arguments: one socat child per connection, bounded, to the agent socket', () => {
  assert.deepEqual(relayArguments(1024, '/run/hc/agent.sock', 8), ['VSOCK-LISTEN:1024,fork,max-children=8', 'UNIX-CONNECT:/run/hc/agent.sock']);
  assert.throws(() => relayArguments(1024, '/run/x,fork'), /cannot be written/);
});

test('findRelays finds only socat processes listening on that port', async () => {
  const proc = await mkdtemp(join(tmpdir(), 'hc-proc-'));
  const put = async (pid: number, argv: string[]): Promise<void> => {
    await mkdir(join(proc, String(pid)));
    await writeFile(join(proc, String(pid), 'cmdline'), `${argv.join('\0')}\0`);
  };
  try {
    await put(10, ['/usr/bin/socat', 'VSOCK-LISTEN:1024,fork,max-children=16', 'UNIX-CONNECT:/run/hc/agent.sock']);
    await put(11, ['/usr/bin/socat', 'VSOCK-LISTEN:10240,fork', 'UNIX-CONNECT:/x']);
    await put(12, ['/bin/sh', '-c', 'echo VSOCK-LISTEN:1024,fork']);
    await mkdir(join(proc, 'self'));
    assert.deepEqual(await findRelays(1024, proc), [10]);
  } finally {
    await rm(proc, { recursive: true, force: true });
  }
});

test('the relay is restarted when it exits and stopped with the agent', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-relay-'));
  const socat = join(dir, 'socat');
  const runs = join(dir, 'runs');
  // A fake socat that records its arguments and exits at once (as a socat that fails to bind would).
  await writeFile(socat, `#!/bin/sh\necho "$@" >> ${runs}\n`, { mode: 0o755 });
  const log: string[] = [];
  const relay = new VsockRelay({ port: 1024, agentSocket: '/run/hc/agent.sock', socat, restartMs: 50, log: (l) => log.push(l), proc: join(dir, 'noproc') });
  try {
    await relay.start();
    await new Promise((r) => setTimeout(r, 400));
    relay.stop();
    const started = (await readFile(runs, 'utf8')).trim().split('\n');
    assert.ok(started.length >= 2, `restarted (${started.length} runs)`);
    assert.equal(started[0], 'VSOCK-LISTEN:1024,fork,max-children=16 UNIX-CONNECT:/run/hc/agent.sock');
    const count = started.length;
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await readFile(runs, 'utf8')).trim().split('\n').length, count, 'not restarted after stop');
    assert.ok(log.some((l) => l.includes('restarting')));
  } finally {
    relay.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
