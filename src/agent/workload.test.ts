/**
 * StartWorkload and exec-into-workload end to end through the service, with a fake crun (see
 * FAKE_CRUN) and without the exec helper (exec-helper.test.ts runs execs through it): every exec
 * is a `crun exec`.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCommand } from '../system/command.js';
import { Code, TtrpcError, TtrpcServer } from '../ttrpc/index.js';
import { listenUnix } from './channel.js';
import { registerAgentService } from './service.js';
import { AgentTestClient, FAKE_CRUN, fakeGuest, recordingRunner } from './test-helpers.js';
import type { OciSpec } from './oci-config.js';


let dir: string;
let server: TtrpcServer;
let listener: net.Server;
let c: AgentTestClient;
let mounts: string[];
let agent: ReturnType<typeof registerAgentService>;
const crunLog = (): Promise<string[][]> => readFile(join(dir, 'crun.log'), 'utf8').then((t) => t.trim().split('\n').map((l) => JSON.parse(l) as string[]));
const isCode = (code: number) => (err: unknown) => err instanceof TtrpcError && err.code === code;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hc-workload-'));
  const crun = join(dir, 'crun');
  await writeFile(crun, FAKE_CRUN, { mode: 0o755 });
  const paths = await fakeGuest(join(dir, 'guest'), { vda: 'image' });
  const rec = recordingRunner(paths);
  mounts = rec.commands;
  // Mounts are recorded; crun's helper calls (delete, kill) run the fake crun for real.
  const run = (file: string, args: readonly string[]) => (file === crun ? runCommand(file, args) : rec.run(file, args));
  server = new TtrpcServer();
  agent = registerAgentService(server, { powerOff: () => undefined, workload: { paths, crun, run, crunStateDir: join(dir, 'crun-state'), execHelper: null } });
  listener = await listenUnix(server, join(dir, 'a.sock'));
  c = await AgentTestClient.connect(join(dir, 'a.sock'));
});

after(async () => {
  // Nothing may outlive the tests (a failed assertion would leave `sleep`s behind).
  for (const p of (await c.call('ListProcesses', {})).processes) if (p.running) await c.call('Signal', { processId: p.processId, signal: 'KILL' }).catch(() => undefined);
  c.close();
  listener.close();
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

test('a crun failure fails StartWorkload with crun\'s message; a missing command is main exiting 127', async () => {
  const req = { imageDiskSerial: 'image', hostname: 'box' };
  await assert.rejects(c.call('StartWorkload', { ...req, process: { args: ['fail-create'] } }), (err: unknown) => {
    assert.ok(err instanceof TtrpcError && err.code === Code.FAILED_PRECONDITION);
    assert.match(err.message, /crun could not start the workload \(exit 1\): mount `proc` to `\/proc`: Operation not permitted/);
    return true;
  });
  assert.ok(!(await c.call('ListProcesses', {})).processes.some((p) => p.processId === 'main'));
  assert.equal((await c.call('Hello', {})).workloadStarted, false);

  const started = await c.call('StartWorkload', { ...req, process: { args: ['nosuch'] } });
  assert.equal(started.processId, 'main');
  const r = await c.io('main').collect();
  assert.equal(r.final.exitCode, 127);
  assert.equal(r.stderr.toString(), 'exec: "nosuch": executable file not found in $PATH\n');
});

test('StartWorkload mounts the image, writes config.json and runs crun; exec joins it', async () => {
  const started = await c.call('StartWorkload', {
    process: { args: ['sh', '-c', 'echo main-out; echo "$HOSTNAME"; exec sleep 30'], env: ['APP=1'] },
    imageDiskSerial: 'image',
    hostname: 'box',
    limits: { memoryBytes: 1 << 26, pids: 0 },
  });
  assert.deepEqual([started.processId, started.pid > 0], ['main', true]);
  assert.equal((await c.call('Hello', {})).workloadStarted, true);
  assert.equal(mounts.length, 1, 'the rootfs is mounted once and reused by later starts');
  assert.match(mounts[0]!, /^mount -t ext4 -o rw .*\/dev\/vda .*\/run\/hc\/rootfs$/);
  const config = JSON.parse(await readFile(join(dir, 'guest/run/hc/bundle/config.json'), 'utf8')) as OciSpec;
  assert.equal(config.hostname, 'box');
  assert.deepEqual(config.linux.resources.memory, { limit: 1 << 26 });
  assert.ok(config.process.env.includes('APP=1'));
  await assert.rejects(c.call('StartWorkload', { process: { args: ['true'] }, imageDiskSerial: 'image' }), isCode(Code.FAILED_PRECONDITION));

  const main = c.io('main');
  const first = await main.stream.recv();
  assert.ok(first);

  // exec: the workload's env plus the exec's own, cwd and user passed to crun exec.
  const e = await c.call('CreateProcess', { process: { args: ['sh', '-c', 'echo "$APP $FOO $HOSTNAME"; pwd'], env: ['FOO=bar'], cwd: '/tmp' }, inWorkload: true });
  const out = await c.io(e.processId).collect();
  assert.equal(out.stdout.toString(), '1 bar box\n/tmp\n');
  const execArgs = (await crunLog()).find((a) => a.includes('exec') && a.includes('--env=FOO=bar'))!;
  assert.ok(execArgs.includes('--cwd=/tmp') && execArgs.includes('--user=0:0'));
  assert.ok(!execArgs.includes('--tty'));
  assert.ok(execArgs.some((a) => a.startsWith('--pid-file=')));
  const listed = (await c.call('ListProcesses', {})).processes.find((p) => p.processId === e.processId);
  assert.deepEqual([listed?.inWorkload, listed?.args[0]], [true, 'sh']);

  // A missing command inside: crun exec's 255 + its message become 127 + Docker's message.
  const missing = await c.call('CreateProcess', { process: { args: ['nosuch'] }, inWorkload: true });
  const m = await c.io(missing.processId).collect();
  assert.deepEqual([m.final.exitCode, m.stderr.toString(), m.stdout.length], [127, 'exec: "nosuch": executable file not found in $PATH\n', 0]);

  // A terminal: the pty is crun's stdio.
  const t = await c.call('CreateProcess', { process: { args: ['tty'], terminal: true }, inWorkload: true });
  assert.match((await c.io(t.processId).collect()).stdout.toString(), /^\/dev\/pts\/\d+/);

  // Signals reach the process inside through crun's pid file.
  const s = await c.call('CreateProcess', { process: { args: ['sleep', '100'] }, inWorkload: true });
  await new Promise((r) => setTimeout(r, 200));
  await c.call('Signal', { processId: s.processId, signal: 'SIGTERM' });
  assert.deepEqual(await c.call('Wait', { processId: s.processId }), { exitCode: 143, signal: 'SIGTERM' });

  // And main's through crun kill.
  await c.call('Signal', { processId: 'main', signal: 'TERM' });
  assert.deepEqual(await c.call('Wait', { processId: 'main' }), { exitCode: 143, signal: 'SIGTERM' });
  assert.ok((await crunLog()).some((a) => a.join(' ') === 'kill hc-main SIGTERM'));
  main.stream.cancel();
});

test('crun delete runs only for a container crun still has state of, not at every start (a crun run costs boot time)', async () => {
  const deletes = async () => (await crunLog()).filter((a) => a[0] === 'delete').length;
  assert.equal(await deletes(), 0, 'no container state: no delete at the starts so far');
  await mkdir(join(dir, 'crun-state', 'hc-main'), { recursive: true });
  const started = await c.call('StartWorkload', { process: { args: ['true'] }, imageDiskSerial: 'image' });
  assert.equal(started.processId, 'main');
  assert.equal(await deletes(), 1, 'a leftover container is deleted first');
  assert.equal((await c.io('main').collect()).final.exitCode, 0);
});

test('once_per_boot: a workload that ran in this boot is not started again, even after it exited (the host sends StartWorkload along with Hello)', async () => {
  // Without the flag (as the tests above do) a workload that exited may start again.
  const first = await c.call('StartWorkload', { process: { args: ['true'] }, imageDiskSerial: 'image' });
  assert.equal(first.processId, 'main');
  assert.equal((await c.io('main').collect()).final.exitCode, 0);
  const runs = (await crunLog()).filter((a) => a.includes('run')).length;
  await assert.rejects(c.call('StartWorkload', { process: { args: ['true'] }, imageDiskSerial: 'image', oncePerBoot: true }), (err: unknown) => isCode(Code.FAILED_PRECONDITION)(err) && /already started in this boot/.test((err as Error).message));
  assert.equal((await crunLog()).filter((a) => a.includes('run')).length, runs, 'crun was not run again');
});

test('adopt at boot runs no crun when crun has no state of the container (it runs while the host\'s first requests arrive)', async () => {
  await rm(join(dir, 'crun-state'), { recursive: true, force: true });
  const before = (await crunLog()).length;
  await agent.workload.adopt();
  assert.equal((await crunLog()).length, before, 'no crun state');
  await mkdir(join(dir, 'crun-state', 'hc-main'), { recursive: true });
  await agent.workload.adopt();
  assert.deepEqual((await crunLog()).slice(before).map((a) => a[0]), ['state'], 'with state, crun is asked');
});
