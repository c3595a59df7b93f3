/**
 * Exec into the workload through the exec helper (the real static binary, dist/agent/exec-helper),
 * end to end through the agent service, with the fake crun of test-helpers (no containers on the
 * test host): the semantics of `crun exec` (env, cwd, user, exit codes, Docker's messages, signals,
 * pipes) with one crun run for the helper instead of one per process; and a hostile or dead helper.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCommand } from '../system/command.js';
import { Code, TtrpcError, TtrpcServer } from '../ttrpc/index.js';
import { listenUnix } from './channel.js';
import { encodeFrame, ExecHelper, HelperChild, MAX_REQUEST_BYTES } from './exec-helper.js';
import { openDetachedPty } from './pty.js';
import { registerAgentService } from './service.js';
import { AgentTestClient, FAKE_CRUN, fakeGuest, recordingRunner } from './test-helpers.js';
import { codecs, type IoOutput } from './protocol/messages.js';
import { AGENT_SERVICE } from './protocol/schema.js';

// This file runs as dist/src/agent/exec-helper.test.js; the build puts the helper in dist/agent.
const HELPER = fileURLToPath(new URL('../../agent/exec-helper', import.meta.url));

let dir: string;
let server: TtrpcServer;
let listener: net.Server;
let c: AgentTestClient;
let agent: ReturnType<typeof registerAgentService>;
const logs: string[] = [];
const crunCalls = async (): Promise<string[][]> => (await readFile(join(dir, 'crun.log'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as string[]);
const execCalls = async (): Promise<number> => (await crunCalls()).filter((a) => a[0] === 'exec').length;

async function until(what: string, check: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; log: ${logs.join(' | ')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Runs `args` in the workload and collects everything. */
async function exec(args: string[], extra: { env?: string[]; cwd?: string; user?: string; stdin?: Buffer } = {}) {
  const { stdin, ...spec } = extra;
  const { processId } = await c.call('CreateProcess', { process: { args, ...spec }, inWorkload: true });
  const io = c.io(processId);
  if (stdin) await io.send(stdin);
  await io.closeStdin();
  return { processId, ...(await io.collect()) };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hc-exec-helper-'));
  const crun = join(dir, 'crun');
  await writeFile(crun, FAKE_CRUN, { mode: 0o755 });
  const paths = await fakeGuest(join(dir, 'guest'), { vda: 'image' });
  const rec = recordingRunner(paths);
  const run = (file: string, args: readonly string[]) => (file === crun ? runCommand(file, args) : rec.run(file, args));
  server = new TtrpcServer();
  agent = registerAgentService(server, { powerOff: () => undefined, log: (m) => logs.push(m), workload: { paths, crun, run, execHelper: HELPER } });
  listener = await listenUnix(server, join(dir, 'a.sock'));
  c = await AgentTestClient.connect(join(dir, 'a.sock'));
  await c.call('StartWorkload', { process: { args: ['sh', '-c', 'exec sleep 300'], env: ['APP=1'] }, imageDiskSerial: 'image', hostname: 'box' });
  await until('the exec helper', () => logs.includes('exec helper ready'));
});

after(async () => {
  for (const p of (await c.call('ListProcesses', {})).processes) if (p.running) await c.call('Signal', { processId: p.processId, signal: 'KILL' }).catch(() => undefined);
  await agent.workload.stopExecHelper();
  c.close();
  listener.close();
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

test('execs are forks of the helper: one crun exec started it, none per process', async () => {
  const before = await execCalls();
  for (let i = 0; i < 5; i++) assert.equal((await exec(['true'])).final.exitCode, 0);
  assert.equal(await execCalls(), before, 'no crun exec per process');
  const helperRun = (await crunCalls()).filter((a) => a[0] === 'exec' && a.includes('/proc/self/fd/3'));
  assert.equal(helperRun.length, 1);
  assert.ok(helperRun[0]!.includes('--preserve-fds=1') && helperRun[0]!.includes('hc-main'));
});

test('stdout, stderr and the exit code; the workload env plus the exec env and nothing else; cwd', async () => {
  const r = await exec(['sh', '-c', 'echo out; echo err >&2; env | sort; pwd; exit 3'], { env: ['FOO=bar', 'APP=2'], cwd: '/tmp' });
  assert.equal(r.final.exitCode, 3);
  assert.equal(r.stderr.toString(), 'err\n');
  const lines = r.stdout.toString().split('\n');
  assert.equal(lines[0], 'out');
  const env = lines.slice(1, -2).filter((l) => !/^(PWD|SHLVL|_)=/.test(l));
  assert.deepEqual(env, ['APP=2', 'FOO=bar', 'HOME=/root', 'HOSTNAME=box', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
  assert.equal(lines.at(-2), '/tmp');
});

test('a user runs with its ids and no supplementary groups, and owns its stdio pipes (/dev/stdout opens)', async () => {
  const r = await exec(['sh', '-c', 'id -u; id -g; id -G; echo again > /dev/stdout'], { user: '65534:65533' });
  assert.equal(r.final.exitCode, 0, r.stderr.toString());
  assert.equal(r.stdout.toString(), '65534\n65533\n65533\nagain\n');
});

test("failures read as Docker's: a missing command exits 127, a missing cwd or a file that is not executable 126", async () => {
  const missing = await exec(['no-such-command']);
  assert.deepEqual([missing.final.exitCode, missing.stderr.toString(), missing.stdout.length], [127, 'exec: "no-such-command": executable file not found in $PATH\n', 0]);
  const cwd = await exec(['true'], { cwd: '/no/such/dir' });
  assert.deepEqual([cwd.final.exitCode, cwd.stderr.toString()], [126, 'chdir to cwd ("/no/such/dir") failed: no such file or directory\n']);
  const plain = join(dir, 'not-executable');
  await writeFile(plain, 'echo never\n');
  await chmod(plain, 0o644);
  const noexec = await exec([plain], { user: '65534' });
  assert.deepEqual([noexec.final.exitCode, noexec.stderr.toString()], [126, `exec: "${plain}": permission denied\n`]);
});

test('stdio are pipes: /dev/stdout works, 1 MiB of stdin comes back whole, fast output before the agent reads is kept', async () => {
  const dev = await exec(['sh', '-c', 'echo to-dev-stdout > /dev/stdout; echo to-dev-stderr > /dev/stderr; ls -l /proc/self/fd/0 /proc/self/fd/1']);
  assert.equal(dev.final.exitCode, 0, dev.stderr.toString());
  assert.match(dev.stdout.toString(), /^to-dev-stdout\n/);
  assert.match(dev.stdout.toString(), /0 -> pipe:\[\d+\]/);
  assert.equal(dev.stderr.toString(), 'to-dev-stderr\n');
  const input = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < input.length; i++) input[i] = (i * 7) & 0xff;
  const cat = await exec(['cat'], { stdin: input });
  assert.ok(cat.stdout.equals(input), `cat returned ${cat.stdout.length} bytes`);
  const burst = await exec(['head', '-c', '300000', '/dev/zero']);
  assert.equal(burst.stdout.length, 300_000);
  // Stdin closed before anything was written to it (its stream is made only when written) reads as EOF.
  const empty = await exec(['sh', '-c', 'cat; echo "eof $?"']);
  assert.equal(empty.stdout.toString(), 'eof 0\n');
});

test('Exec: the process starts in the workload and its whole output and exit come on the same stream', async () => {
  const stream = c.ttrpc.stream(AGENT_SERVICE, 'Exec', {
    streamingClient: true,
    streamingServer: true,
    payload: codecs.IoInput.encode({ create: { process: { args: ['sh', '-c', 'echo out; echo err >&2; head -c 200000 /dev/zero; exit 5'] }, inWorkload: true }, closeStdin: true }),
  });
  const messages: IoOutput[] = [];
  for await (const raw of stream) messages.push(codecs.IoOutput.decode(raw));
  const pid = messages[0]?.started?.pid ?? 0;
  assert.ok(messages[0]?.started?.processId && pid > 0, 'the first message says which process started');
  const listed = (await c.call('ListProcesses', {})).processes.find((p) => p.processId === messages[0]!.started!.processId);
  assert.deepEqual([listed?.inWorkload, listed?.pid], [true, pid]);
  const of = (fd: number) => Buffer.concat(messages.filter((m) => m.fd === fd && !m.exited).map((m) => Buffer.from(m.data ?? new Uint8Array(0))));
  assert.equal(of(1).length, 4 + 200_000);
  assert.equal(of(2).toString(), 'err\n');
  assert.deepEqual([messages.at(-1)?.exited, messages.at(-1)?.exitCode], [true, 5]);
});

test('a signal reaches the process; the exit names it', async () => {
  const { processId } = await c.call('CreateProcess', { process: { args: ['sleep', '100'] }, inWorkload: true });
  await c.call('Signal', { processId, signal: 'SIGTERM' });
  assert.deepEqual(await c.call('Wait', { processId }), { exitCode: 143, signal: 'SIGTERM' });
});

/**
 * /proc/PID/stat of a process on a terminal, as printed by `exec cat /proc/self/stat` (cat takes
 * the shell's pid): its pid, process group, session, terminal and the terminal's foreground group.
 */
function terminalFacts(output: string): { pid: number; pgrp: number; session: number; ttyNr: number; tpgid: number } {
  const fields = output.slice(output.lastIndexOf(')') + 2).trim().split(' ').map(Number);
  return { pid: Number(output.split(' ')[0]), pgrp: fields[2]!, session: fields[3]!, ttyNr: fields[4]!, tpgid: fields[5]! };
}

/** A terminal process leads its own session, its terminal is the controlling one, its group in the foreground: a shell has job control. */
function assertSessionOnTerminal(output: string): void {
  const t = terminalFacts(output);
  assert.ok(t.pid > 0, output);
  assert.deepEqual({ pgrp: t.pgrp, session: t.session, tpgid: t.tpgid }, { pgrp: t.pid, session: t.pid, tpgid: t.pid }, `not a session leader owning its terminal: ${output}`);
  assert.notEqual(t.ttyNr, 0, 'the pty is its controlling terminal');
}

/** Runs `args` in the workload on a terminal and collects everything. */
async function execOnTerminal(args: string[], extra: { user?: string } = {}) {
  const { processId } = await c.call('CreateProcess', { process: { args, terminal: true, ...extra }, inWorkload: true });
  const io = c.io(processId);
  await io.closeStdin();
  return io.collect();
}

test('a terminal exec is a fork of the helper too, leading a session whose controlling terminal is its pty', async () => {
  const before = await execCalls();
  const tty = await execOnTerminal(['tty']);
  assert.match(tty.stdout.toString(), /^\/dev\/pts\/\d+/);
  const stat = await execOnTerminal(['sh', '-c', 'exec cat /proc/self/stat'], { user: '65534:65533' });
  assert.equal(stat.final.exitCode, 0, stat.stdout.toString());
  assertSessionOnTerminal(stat.stdout.toString());
  assert.equal(await execCalls(), before, 'no crun exec');
  const missing = await execOnTerminal(['no-such-command']);
  assert.deepEqual([missing.final.exitCode, missing.stdout.toString()], [127, 'exec: "no-such-command": executable file not found in $PATH\r\n']);
});

test('an interactive shell on a terminal exec has job control: ^C ends the foreground job only, background jobs are listed', async () => {
  const { processId } = await c.call('CreateProcess', { process: { args: ['sh', '-i'], terminal: true, env: ['PS1=prompt> '] }, inWorkload: true });
  const io = c.io(processId);
  let screen = '';
  const collected = io.collect((m) => (screen += m.data ? Buffer.from(m.data).toString('utf8') : ''));
  const waitScreen = (what: string, re: RegExp) => until(what, () => re.test(screen));
  await waitScreen('the prompt', /prompt> $/);
  await io.send(Buffer.from('sleep 100\n'));
  await until('sleep to run', () => screen.includes('sleep 100\r\n'));
  await new Promise((r) => setTimeout(r, 300));
  await io.send(Buffer.from('\x03'));
  await io.send(Buffer.from('echo "status=$?"\n'));
  await waitScreen('the status of the interrupted job', /status=130/);
  await io.send(Buffer.from('sleep 100 &\njobs\n'));
  await waitScreen('the job list', /\[1\]\s*\+?\s*Running\s+sleep 100/);
  await io.send(Buffer.from('kill %1; exit 7\n'));
  const r = await collected;
  assert.equal(r.final.exitCode, 7, screen);
  assert.doesNotMatch(screen, /job control turned off|no job control/);
});

/** Runs the helper's binary with `args` (as crun would, given the binary) on a fresh pty, or on pipes; its output and status. */
async function helperBinaryOn(terminal: boolean, args: string[]): Promise<{ output: string; code: number | null }> {
  if (!terminal) {
    const r = spawnSync(HELPER, args, { encoding: 'utf8' });
    return { output: r.stdout + r.stderr, code: r.status };
  }
  const tty = await openDetachedPty(24, 80);
  let output = '';
  tty.master.on('data', (d: Buffer) => (output += d.toString('utf8')));
  // The master reads EIO once no slave is open; it may also just end or close (as process.ts expects), which
  // this waited for not (a file-timeout in a loaded full unit run).
  const ended = new Promise<void>((resolve) => {
    for (const event of ['error', 'end', 'close']) tty.master.once(event, () => resolve());
  });
  const child = spawn(HELPER, args, { stdio: [tty.slave, tty.slave, tty.slave] });
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  tty.closeSlave();
  await ended;
  tty.master.destroy();
  return { output, code };
}

test("tty-session (how crun runs a terminal process): the command leads a session on its stdin's terminal; Docker's 127; refused without a terminal", async () => {
  const stat = await helperBinaryOn(true, ['tty-session', 'sh', '-c', 'exec cat /proc/self/stat']);
  assert.equal(stat.code, 0, stat.output);
  assertSessionOnTerminal(stat.output);
  assert.deepEqual(await helperBinaryOn(true, ['tty-session', 'no-such-command']), { output: 'exec: "no-such-command": executable file not found in $PATH\r\n', code: 127 });
  const pipes = await helperBinaryOn(false, ['tty-session', 'true']);
  assert.deepEqual(pipes, { output: 'the standard input is not a terminal: Inappropriate ioctl for device\n', code: 126 });
});

test('a command line the helper cannot take is refused with the reason, and the helper serves on', async () => {
  await assert.rejects(c.call('CreateProcess', { process: { args: ['echo', 'a\0b'] }, inWorkload: true }), (err: unknown) => err instanceof TtrpcError && err.code === Code.INVALID_ARGUMENT && /NUL/.test(err.message));
  // More than the helper reads cannot come through TTRPC (its messages are as large at most): ask it directly.
  const helper = await ExecHelper.start({ crun: join(dir, 'crun'), containerId: 'hc-main', binary: HELPER, pidFile: join(dir, 'direct.pid'), crunEnv: {} });
  try {
    const huge = { args: ['true'], env: [`BIG=${'x'.repeat(MAX_REQUEST_BYTES)}`], cwd: '/', uid: 0, gid: 0 };
    await assert.rejects(helper.spawn(huge), (err: unknown) => err instanceof TtrpcError && err.code === Code.INVALID_ARGUMENT && /more than 4194304/.test(err.message));
    const child = await helper.spawn({ ...huge, env: [] });
    assert.deepEqual(await new Promise((r) => child.on('exit', (code, signal) => r([code, signal]))), [0, null]);
  } finally {
    await helper.stop();
  }
  assert.equal((await exec(['true'])).final.exitCode, 0, "the workload's helper still serves");
});

test('a helper killed from inside the workload: its running process is reported killed, exec falls back to crun, a new helper takes over', async () => {
  const { processId, pid } = await c.call('CreateProcess', { process: { args: ['sleep', '100'] }, inWorkload: true });
  const helperPid = Number((await readFile(join(dir, 'guest/run/hc/bundle/exec-helper.pid'), 'utf8')).trim());
  process.kill(helperPid, 'SIGKILL');
  assert.deepEqual(await c.call('Wait', { processId }), { exitCode: 137, signal: 'SIGKILL' });
  // In a VM the container's end kills it; here it would outlive the test.
  process.kill(pid, 'SIGKILL');
  await until('the agent to notice', () => logs.some((l) => /exec helper: it exited/.test(l)));
  const readyBefore = logs.filter((l) => l === 'exec helper ready').length;
  const before = await execCalls();
  const r = await exec(['sh', '-c', 'echo still-works']);
  assert.equal(r.stdout.toString(), 'still-works\n');
  assert.ok((await execCalls()) >= before + 1, 'that exec went through crun');
  await until('a new helper', () => logs.filter((l) => l === 'exec helper ready').length > readyBefore);
  const settled = await execCalls();
  assert.equal((await exec(['true'])).final.exitCode, 0);
  assert.equal(await execCalls(), settled, 'and the next one through the new helper');
});

/** The raw binary, for what the agent never sends. */
function rawHelper(): { proc: ReturnType<typeof spawn>; stdout: () => Buffer; stderr: () => string; exited: Promise<number | null> } {
  const proc = spawn(HELPER, [], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = Buffer.alloc(0);
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => (out = Buffer.concat([out, d])));
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return { proc, stdout: () => out, stderr: () => err, exited: new Promise((r) => proc.on('exit', (code) => r(code))) };
}

test('the helper survives malformed requests and stops at an oversized frame, without starting anything', async () => {
  const h = rawHelper();
  const unterminated = Buffer.from([0, 0, 0, 3, 0x72, 0x75, 0x6e]);
  h.proc.stdin!.write(unterminated);
  h.proc.stdin!.write(encodeFrame(['run', 'a', 'nope', '0', '/', '1', 'true', '0']));
  h.proc.stdin!.write(encodeFrame(['run', 'b', '0', '0', '/', '5', 'true', '0']));
  h.proc.stdin!.write(encodeFrame(['launch', 'c']));
  h.proc.stdin!.write(encodeFrame(['signal', 'nobody', '9']));
  await until('the answers', () => h.stdout().toString().split('failed').length === 3 && /unknown request/.test(h.stderr()));
  assert.match(h.stderr(), /malformed frame/);
  assert.match(h.stdout().toString(), /failed\0a\0malformed run request\0/);
  assert.match(h.stdout().toString(), /failed\0b\0malformed run request\0/);
  assert.doesNotMatch(h.stdout().toString(), /started/);
  const oversized = Buffer.alloc(4);
  oversized.writeUInt32BE(MAX_REQUEST_BYTES + 1);
  h.proc.stdin!.write(oversized);
  assert.equal(await h.exited, 1);
  assert.match(h.stderr(), /over the limit/);
});

test('the helper refuses to start where crun cannot run it, and says why', async () => {
  await assert.rejects(
    ExecHelper.start({ crun: join(dir, 'no-such-crun'), containerId: 'hc-main', binary: HELPER, pidFile: join(dir, 'x.pid'), crunEnv: {} }),
    /the exec helper did not start: .*ENOENT/,
  );
});

test("a process whose 'exited' frame came in the same read as its 'started' frame still reports its exit to whoever awaited the spawn", async () => {
  // The helper's answer for `true` often carries both frames at once: the exit is then known before
  // the awaiting caller has listened. It must reach that caller (an exec of `true` hung otherwise).
  const child = new HelperChild('quick');
  const spawned = Promise.resolve(child);
  child.exited(0, null);
  const got = await spawned;
  const exit = await Promise.race([new Promise((r) => got.once('exit', (code, signal) => r([code, signal]))), new Promise((r) => setTimeout(() => r('no exit event'), 1000))]);
  assert.deepEqual(exit, [0, null]);
});
