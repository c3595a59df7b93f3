import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Code, TtrpcError, TtrpcServer, type ServiceMethods } from '../ttrpc/index.js';
import { listenUnix } from './channel.js';
import { codecs } from './protocol/messages.js';
import { registerAgentService } from './service.js';
import { AgentTestClient } from './test-helpers.js';
import { TtrpcAgentSession } from '../agent-client/agent-session.js';
import type { ExitStatus, ProcessIo } from '../core/agent.js';
import { AGENT_SERVICE } from './protocol/schema.js';
import { setTimeout as sleep } from 'node:timers/promises';

let dir: string;
let server: TtrpcServer;
let listener: net.Server;
let sock: string;
const powerOffs: boolean[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hc-agent-'));
  sock = join(dir, 'agent.sock');
  server = new TtrpcServer();
  // A small ring so the overflow test stays fast; everything else fits.
  registerAgentService(server, { powerOff: (reboot) => void powerOffs.push(reboot), processes: { bufferBytes: 2 * 1024 * 1024, firstReaderGraceMs: 2000 } });
  listener = await listenUnix(server, sock);
});

after(async () => {
  listener.close();
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

const isCode = (code: number) => (err: unknown) => err instanceof TtrpcError && err.code === code;

test('stdout and stderr arrive on their fds, then the exit code', async () => {
  const c = await AgentTestClient.connect(sock);
  try {
    const r = await c.run(['sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.equal(r.stdout.toString(), 'out\n');
    assert.equal(r.stderr.toString(), 'err\n');
    assert.equal(r.final.exitCode, 3);
    assert.equal(r.final.signal, '');
    assert.deepEqual(await c.call('Wait', { processId: r.processId }), { exitCode: 3, signal: '' });
    const listed = (await c.call('ListProcesses', {})).processes.find((p) => p.processId === r.processId);
    assert.ok(listed);
    assert.deepEqual([listed.running, listed.exitCode, listed.args], [false, 3, ['sh', '-c', 'echo out; echo err >&2; exit 3']]);
  } finally {
    c.close();
  }
});

test('1 MiB of random stdin through cat comes back byte for byte', async () => {
  const c = await AgentTestClient.connect(sock);
  try {
    const input = randomBytes(1024 * 1024);
    const { processId } = await c.call('CreateProcess', { process: { args: ['cat'] } });
    const io = c.io(processId);
    const collecting = io.collect();
    for (let at = 0; at < input.length; at += 100_000) await io.send(input.subarray(at, at + 100_000));
    await io.closeStdin();
    const r = await collecting;
    assert.equal(r.final.exitCode, 0);
    assert.equal(r.stdout.length, input.length);
    assert.equal(createHash('sha256').update(r.stdout).digest('hex'), createHash('sha256').update(input).digest('hex'));
    // Offsets are absolute and contiguous.
    let expected = 0;
    for (const m of r.messages.filter((x) => !x.exited)) {
      assert.equal(m.offset, expected);
      expected += m.data?.length ?? 0;
    }
  } finally {
    c.close();
  }
});

test('a terminal process has a pty: tty prints /dev/pts/N and stty size follows Resize', async () => {
  const c = await AgentTestClient.connect(sock);
  try {
    const tty = await c.run(['tty'], { terminal: true });
    assert.match(tty.stdout.toString(), /^\/dev\/pts\/\d+\r?\n$/);
    assert.equal(tty.final.exitCode, 0);

    const { processId } = await c.call('CreateProcess', { process: { args: ['sh', '-c', 'stty size; read x; stty size; echo "term=$TERM"'], terminal: true, rows: 30, cols: 90 } });
    const io = c.io(processId);
    let seen = '';
    let resized = false;
    const collecting = io.collect((m) => {
      seen += Buffer.from(m.data ?? new Uint8Array(0)).toString();
      if (!resized && seen.includes('30 90')) {
        resized = true;
        void c.call('Resize', { processId, rows: 40, cols: 100 }).then(() => io.send(Buffer.from('go\n')));
      }
    });
    const r = await collecting;
    assert.match(r.stdout.toString(), /30 90\r?\n[\s\S]*40 100\r?\n[\s\S]*term=xterm/);
    assert.equal(r.stderr.length, 0, 'a terminal merges stderr into stdout');
    await assert.rejects(c.call('Resize', { processId: (await c.run(['true'])).processId, rows: 1, cols: 1 }), isCode(Code.FAILED_PRECONDITION));
  } finally {
    c.close();
  }
});

test('Signal delivers SIGTERM; the exit reports the signal', async () => {
  const c = await AgentTestClient.connect(sock);
  try {
    const { processId, pid } = await c.call('CreateProcess', { process: { args: ['sleep', '100'] } });
    assert.ok(pid > 0);
    await c.call('Signal', { processId, signal: 'SIGTERM' });
    assert.deepEqual(await c.call('Wait', { processId }), { exitCode: 143, signal: 'SIGTERM' });
    await assert.rejects(c.call('Signal', { processId, signal: 'TERM' }), isCode(Code.FAILED_PRECONDITION));
    await assert.rejects(c.call('Signal', { processId, signal: 'SIGNOPE' }), isCode(Code.INVALID_ARGUMENT));
  } finally {
    c.close();
  }
});

test('a missing command exits 127 with Docker\'s message instead of failing the call', async () => {
  const c = await AgentTestClient.connect(sock);
  try {
    const r = await c.run(['no-such-command-hc', 'x']);
    assert.equal(r.final.exitCode, 127);
    assert.equal(r.stderr.toString(), 'exec: "no-such-command-hc": executable file not found in $PATH\n');
    const t = await c.run(['no-such-command-hc'], { terminal: true });
    assert.equal(t.final.exitCode, 127);
    const cwd = await c.run(['true'], { cwd: '/no/such/dir' });
    assert.equal(cwd.final.exitCode, 126);
  } finally {
    c.close();
  }
});

test('output produced with no reader attached is delivered later from offset 0; overflow is counted', async () => {
  const c = await AgentTestClient.connect(sock);
  try {
    const { processId } = await c.call('CreateProcess', { process: { args: ['sh', '-c', 'echo first; echo second >&2'] } });
    await c.call('Wait', { processId });
    const r = await c.io(processId, 0).collect();
    assert.equal(r.stdout.toString(), 'first\n');
    assert.equal(r.stderr.toString(), 'second\n');
    // Resuming mid-way gives only the rest.
    const tail = await c.io(processId, 6).collect();
    assert.equal(tail.stdout.length + tail.stderr.length, 7);

    // 3 MiB into a 2 MiB ring: the first MiB is gone, and the reader is told.
    const big = await c.call('CreateProcess', { process: { args: ['sh', '-c', 'head -c 3145728 /dev/zero'] } });
    await c.call('Wait', { processId: big.processId });
    const o = await c.io(big.processId, 0).collect();
    assert.equal(o.messages[0]?.droppedBytes, 1024 * 1024);
    assert.equal(o.messages[0]?.offset, 1024 * 1024);
    assert.equal(o.stdout.length, 2 * 1024 * 1024);
  } finally {
    c.close();
  }
});

test('a dropped connection leaves the process running; a new connection finds it and its output', async () => {
  const first = await AgentTestClient.connect(sock);
  const { processId } = await first.call('CreateProcess', { process: { args: ['sh', '-c', 'echo before; sleep 0.5; echo after'] } });
  const io = first.io(processId);
  const early = await io.stream.recv();
  assert.equal(Buffer.from(codecs.IoOutput.decode(early!).data!).toString(), 'before\n');
  first.close(); // mid-process, with an Io stream open

  const second = await AgentTestClient.connect(sock);
  try {
    const listed = (await second.call('ListProcesses', {})).processes.find((p) => p.processId === processId);
    assert.ok(listed, 'still listed');
    const r = await second.io(processId, 0).collect();
    assert.equal(r.stdout.toString(), 'before\nafter\n');
    assert.equal(r.final.exitCode, 0);
  } finally {
    second.close();
  }
});

test('the handshake discards stale bytes before the sync line', async () => {
  const garbage = Buffer.concat([randomBytes(300), Buffer.from('\nHCSYNC short\n'), randomBytes(50)]);
  const c = await AgentTestClient.connect(sock, garbage);
  try {
    const hello = await c.call('Hello', { hostVersion: 'test' });
    assert.equal(hello.nodeVersion, process.version);
    assert.match(hello.agentVersion, /^\d+\.\d+\.\d+$/);
    assert.equal(hello.workloadStarted, false);
  } finally {
    c.close();
  }
});

test('user, env and cwd are applied', async () => {
  const c = await AgentTestClient.connect(sock);
  try {
    const r = await c.run(['sh', '-c', 'echo "$(id -u):$(id -g) $PWD $FOO $PATH"'], { user: '65534:65534', env: ['FOO=bar'], cwd: '/tmp' });
    assert.equal(r.stdout.toString(), `65534:65534 /tmp bar /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n`);
    await assert.rejects(c.call('CreateProcess', { process: { args: ['true'], user: 'nobody' } }), isCode(Code.INVALID_ARGUMENT));
    await assert.rejects(c.call('CreateProcess', { process: { args: [] } }), isCode(Code.INVALID_ARGUMENT));
  } finally {
    c.close();
  }
});

test('errors: unknown process, no workload; GetStats and Shutdown', async () => {
  const c = await AgentTestClient.connect(sock);
  try {
    await assert.rejects(c.call('Wait', { processId: 'nope' }), isCode(Code.NOT_FOUND));
    await assert.rejects(c.io('nope').collect(), isCode(Code.NOT_FOUND));
    await assert.rejects(c.call('CreateProcess', { process: { args: ['true'] }, inWorkload: true }), isCode(Code.FAILED_PRECONDITION));
    const stats = await c.call('GetStats', {});
    assert.ok(stats.uptimeMs > 0 && stats.memTotalBytes > 0 && stats.processes > 0);
    assert.ok(stats.memAvailableBytes <= stats.memTotalBytes);
    await c.call('Shutdown', { reboot: false });
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(powerOffs, [false]);
  } finally {
    c.close();
  }
});

/** The daemon's own client of the agent (credit, hold, close), over the test connection. */
async function hostSession(): Promise<TtrpcAgentSession & { testClient: AgentTestClient }> {
  const client = await AgentTestClient.connect(sock);
  return Object.assign(new TtrpcAgentSession(client.ttrpc), { testClient: client });
}

function seqOutput(n: number): Buffer {
  return Buffer.from(Array.from({ length: n }, (_, i) => `${i + 1}\n`).join(''));
}

test('a reader that does not read pauses the process; when it reads, it gets every byte in order', async () => {
  const session = await hostSession();
  try {
    // About 8 MiB: four times the agent's ring, eight times the host's window.
    const { processId } = await session.createProcess({ args: ['seq', '1', '1100000'] }, false);
    const io = session.io(processId);
    await sleep(1500);
    const listed = (await session.testClient.call('ListProcesses', {})).processes.find((p) => p.processId === processId);
    assert.equal(listed?.running, true, 'the process waits for its reader instead of finishing (and dropping output)');
    const chunks: Buffer[] = [];
    let next = 0;
    let exit: ExitStatus | undefined;
    for await (const event of io) {
      if (event.kind === 'exit') exit = event.status;
      else {
        assert.equal(event.offset, next, 'no gap, no overlap');
        next += event.data.length;
        chunks.push(Buffer.from(event.data));
      }
    }
    assert.deepEqual(exit, { exitCode: 0 });
    assert.ok(Buffer.concat(chunks).equals(seqOutput(1100000)), 'all output, in order');
  } finally {
    session.close();
  }
});

test('closing a held Io lets the process go on; the agent ends that stream', async () => {
  const session = await hostSession();
  try {
    const { processId } = await session.createProcess({ args: ['seq', '1', '1100000'] }, false);
    const io = session.io(processId);
    await sleep(1000);
    io.close();
    const exit = await Promise.race([session.wait(processId), sleep(15_000, 'still paused', { ref: false })]);
    assert.deepEqual(exit, { exitCode: 0 });
  } finally {
    session.close();
  }
});

test('4 MiB of stdin through cat with credit: output is read while stdin is written, byte for byte', async () => {
  const session = await hostSession();
  try {
    const input = randomBytes(4 * 1024 * 1024);
    const { processId } = await session.createProcess({ args: ['cat'] }, false);
    const io = session.io(processId);
    const reading = (async () => {
      const out: Buffer[] = [];
      for await (const event of io) if (event.kind === 'output') out.push(Buffer.from(event.data));
      return Buffer.concat(out);
    })();
    for (let at = 0; at < input.length; at += 32 * 1024) await io.write(input.subarray(at, at + 32 * 1024));
    await io.closeStdin();
    const output = await reading;
    assert.equal(createHash('sha256').update(output).digest('hex'), createHash('sha256').update(input).digest('hex'));
  } finally {
    session.close();
  }
});

test('output before the first reader opens Io is held for it: a fast process loses nothing', async () => {
  const session = await hostSession();
  try {
    const { processId } = await session.createProcess({ args: ['head', '-c', String(3 * 1024 * 1024), '/dev/zero'] }, false);
    await sleep(500); // the process fills the 2 MiB ring before anyone reads
    let next = 0;
    for await (const event of session.io(processId)) {
      if (event.kind !== 'output') continue;
      assert.equal(event.offset, next, 'from byte 0, no gap');
      next += event.data.length;
    }
    assert.equal(next, 3 * 1024 * 1024);
  } finally {
    session.close();
  }
});

/** Everything one host-side exec's IO gave: stdout, stderr, the exit. */
async function drain(io: ProcessIo): Promise<{ stdout: string; stderr: string; exit?: ExitStatus }> {
  const out: { stdout: string; stderr: string; exit?: ExitStatus } = { stdout: '', stderr: '' };
  for await (const event of io) {
    if (event.kind === 'exit') out.exit = event.status;
    else if (event.fd === 1) out.stdout += Buffer.from(event.data).toString();
    else out.stderr += Buffer.from(event.data).toString();
  }
  return out;
}

test("the host's exec is one Exec call: process id, output and exit; its errors read as CreateProcess's", async () => {
  const session = await hostSession();
  // Unary calls the session makes: none for an exec the agent takes in one Exec call.
  const unary: string[] = [];
  const call = session.testClient.ttrpc.call.bind(session.testClient.ttrpc);
  session.testClient.ttrpc.call = (service, method, ...rest) => (unary.push(method), call(service, method, ...rest));
  try {
    const { processId, pid, io } = await session.exec({ args: ['sh', '-c', 'read line; echo "got $line"; echo err >&2; exit 4'] }, false);
    await io.write(Buffer.from('hi\n'));
    await io.closeStdin();
    assert.deepEqual(await drain(io), { stdout: 'got hi\n', stderr: 'err\n', exit: { exitCode: 4 } });
    assert.deepEqual(unary, []);
    const listed = (await session.testClient.call('ListProcesses', {})).processes.find((p) => p.processId === processId);
    assert.equal(listed?.pid, pid);
    const missing = await session.exec({ args: ['no-such-command'] }, false);
    assert.deepEqual(await drain(missing.io), { stdout: '', stderr: 'exec: "no-such-command": executable file not found in $PATH\n', exit: { exitCode: 127 } });
    await assert.rejects(session.exec({ args: ['true'] }, true), /agent CreateProcess failed: no workload is running/);
    await assert.rejects(session.exec({ args: [] }, false), /agent CreateProcess failed: process args must not be empty/);
  } finally {
    session.close();
  }
});

test('an agent without Exec (an older one) gets CreateProcess and Io instead, exec after exec', async () => {
  // The same service, minus Exec.
  let methods: ServiceMethods = {};
  registerAgentService({ register: (_service: string, m: ServiceMethods) => (methods = m) } as unknown as TtrpcServer, { powerOff: () => undefined });
  const older = new TtrpcServer();
  older.register(AGENT_SERVICE, Object.fromEntries(Object.entries(methods).filter(([name]) => name !== 'Exec')));
  const olderSock = join(dir, 'older.sock');
  const olderListener = await listenUnix(older, olderSock);
  const client = await AgentTestClient.connect(olderSock);
  const session = new TtrpcAgentSession(client.ttrpc);
  try {
    for (const word of ['one', 'two']) {
      const { processId, io } = await session.exec({ args: ['echo', word] }, false);
      assert.ok(processId);
      assert.deepEqual(await drain(io), { stdout: `${word}\n`, stderr: '', exit: { exitCode: 0 } });
    }
  } finally {
    session.close();
    olderListener.close();
    await older.close();
  }
});
