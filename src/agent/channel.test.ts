import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { TtrpcClient, TtrpcServer } from '../ttrpc/index.js';
import { FrameDecoder } from '../ttrpc/framing.js';
import { findVirtioPort, readSync, servePort, type PortChannel, type ServePortOptions } from './channel.js';
import { READY_LINE } from './log.js';
import { registerAgentService } from './service.js';
import { AgentTestClient, hostSync } from './test-helpers.js';

async function* chunks(...parts: (string | Buffer)[]): AsyncGenerator<Buffer> {
  for (const p of parts) yield Buffer.from(p);
}

test('readSync skips garbage (also without a newline before the request) and returns what follows', async () => {
  const r = await readSync(chunks('\x00\x01junk\nHCSYNC bad!\n', Buffer.from([0, 0, 0, 9, 1, 2]), 'HCSY', 'NC abcdef12\nTTRPC', '-more'));
  assert.ok(r);
  assert.equal(r.nonce, 'abcdef12');
  assert.equal(r.rest.toString(), 'TTRPC');
  assert.equal(await readSync(chunks('no sync here\n', 'HCSYNC abc')), undefined, 'EOF before a complete line');
  const long = await readSync(chunks('x'.repeat(100_000), 'HCSYNC 0123456789abcdef\n'));
  assert.equal(long?.nonce, '0123456789abcdef');
});

/**
 * An in-memory virtio-serial port: reads end (EOF) while no host is connected, writes made while
 * none is connected are delivered to the next host, and there is one writable for all connections.
 */
class FakePort implements PortChannel {
  readonly writable: Writable;
  readables = 0;
  private input: PassThrough | undefined;
  private output: PassThrough | undefined;
  private pending: Buffer[] = [];

  constructor() {
    this.writable = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        if (this.output) this.output.write(chunk);
        else this.pending.push(chunk);
        cb();
      },
    });
  }

  newReadable(): Readable {
    this.readables++;
    return this.input ?? Readable.from([]);
  }

  connect(): { toAgent: PassThrough; fromAgent: PassThrough } {
    this.input = new PassThrough();
    this.output = new PassThrough();
    for (const b of this.pending.splice(0)) this.output.write(b);
    return { toAgent: this.input, fromAgent: this.output };
  }

  /**
   * A new host on a live stream, as a restored guest's port sees it: no end of input, the agent's
   * input goes on (the new host writes its handshake into it), and what the agent writes from now
   * on reaches only the new host.
   */
  newHost(): { toAgent: PassThrough; fromAgent: PassThrough } {
    if (!this.input) throw new Error('no host connected');
    this.output = new PassThrough();
    return { toAgent: this.input, fromAgent: this.output };
  }

  disconnect(): void {
    this.input?.end();
    this.output?.end();
    this.input = undefined;
    this.output = undefined;
  }
}

async function hostClient(port: FakePort, staleFromHost?: Buffer): Promise<AgentTestClient> {
  const { toAgent, fromAgent } = port.connect();
  const transport = await hostSync(fromAgent, (b) => toAgent.write(b), () => port.disconnect(), staleFromHost);
  return new AgentTestClient(new TtrpcClient(transport));
}

/** Runs `body` with an agent serving a FakePort (polling every 10 ms), and stops it afterwards. */
async function withServedPort(options: Omit<ServePortOptions, 'pollMs' | 'signal'>, body: (port: FakePort) => Promise<void>): Promise<void> {
  const server = new TtrpcServer();
  registerAgentService(server, { powerOff: () => undefined });
  const port = new FakePort();
  const stop = new AbortController();
  const serving = servePort(server, port, { ...options, pollMs: 10, signal: stop.signal });
  try {
    await body(port);
  } finally {
    stop.abort();
    port.disconnect();
    await serving;
    await server.close();
  }
}

test('virtio-style port: EOF polling while no host, reconnect with a new handshake, process survives', () =>
  withServedPort({}, async (port) => {
    const a = await hostClient(port);
    const { processId } = await a.call('CreateProcess', { process: { args: ['sh', '-c', 'echo one; sleep 0.3; echo two'] } });
    port.disconnect();
    await a.ttrpc.whenClosed();
    const polls = port.readables;
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(port.readables >= polls + 3, `the agent polls for a host (${port.readables - polls} polls)`);

    // Stale bytes from the old conversation reach the agent first; the handshake drops them.
    const b = await hostClient(port, Buffer.from([0, 0, 0, 4, 0, 0, 0, 3, 1, 0, 0xde, 0xad]));
    try {
      assert.ok((await b.call('ListProcesses', {})).processes.some((p) => p.processId === processId));
      const r = await b.io(processId, 0).collect();
      assert.equal(r.stdout.toString(), 'one\ntwo\n');
    } finally {
      b.close();
    }
  }));

test('a new host on a live connection (a restored guest) is answered at once; the old connection is muted, then torn down later', async () => {
  const lines: string[] = [];
  const retireAfterMs = 1500;
  await withServedPort({ log: (l) => lines.push(l), retireAfterMs, connectedLineAfterMs: 0 }, async (port) => {
    // The old host just vanishes (a restored guest's old host is another VM's daemon connection).
    const old = port.connect();
    const a = new AgentTestClient(new TtrpcClient(await hostSync(old.fromAgent, (x) => old.toAgent.write(x), () => undefined)));
    const { processId } = await a.call('CreateProcess', { process: { args: ['sleep', '30'] } });
    // The old host's Wait is pending when the new host comes; the new host ends the process, so
    // the old Wait's answer is due after the new handshake for sure.
    let oldAnswered = false;
    void a.call('Wait', { processId }).then(
      () => (oldAnswered = true),
      () => undefined,
    );

    const { toAgent, fromAgent } = port.newHost();
    const received: Buffer[] = [];
    fromAgent.on('data', (b: Buffer) => received.push(b));
    const seen = new PassThrough();
    fromAgent.pipe(seen);
    const b = new AgentTestClient(new TtrpcClient(await hostSync(seen, (x) => toAgent.write(x), () => port.disconnect())));
    try {
      assert.ok((await b.call('ListProcesses', {})).processes.some((p) => p.processId === processId));
      assert.ok(!lines.some((l) => l.startsWith('host disconnected')), `the new host is answered before the old connection is torn down: ${lines.join(' | ')}`);
      await b.call('Signal', { processId, signal: 'SIGKILL' });
      await b.call('Wait', { processId });
      await new Promise((r) => setTimeout(r, 100));
      const bytes = Buffer.concat(received);
      const afterReply = bytes.indexOf(0x0a) + 1;
      assert.match(bytes.subarray(0, afterReply).toString('latin1'), /^HCSYNC [0-9a-f]+ OK\n$/, 'the handshake reply comes first');
      assert.deepEqual(
        new FrameDecoder().push(bytes.subarray(afterReply)).map((f) => (f.kind === 'frame' ? f.frame.streamId : -1)),
        [1, 3, 5],
        "the new host got the answers to its three calls and nothing else: not the old host's Wait answer",
      );
      assert.equal(oldAnswered, false, 'the old host got no answer after the new one came');

      await new Promise((r) => setTimeout(r, retireAfterMs));
      assert.deepEqual(
        lines.map((l) => l.replace(/sync [0-9a-f]+/, 'sync N')),
        ['host connected (sync N)', 'host connected (sync N)', 'host disconnected (a new host connected)'],
        'the old connection was torn down later',
      );
    } finally {
      b.close();
      a.close();
    }
  });
});

test('findVirtioPort finds the port by its name in sysfs', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-vport-'));
  try {
    for (const [port, name] of [['vport1p1', 'org.qemu.guest_agent.0'], ['vport2p1', 'hypercore.agent']]) {
      await mkdir(join(dir, 'sys', port), { recursive: true });
      await writeFile(join(dir, 'sys', port, 'name'), `${name}\n`);
    }
    const paths = { sysClass: join(dir, 'sys'), dev: '/dev' };
    assert.equal(await findVirtioPort('hypercore.agent', paths), '/dev/vport2p1');
    assert.equal(await findVirtioPort('other', paths), undefined);
    assert.equal(await findVirtioPort('hypercore.agent', { sysClass: join(dir, 'missing'), dev: '/dev' }), undefined);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** Runs an agent entry with --listen, waits for the ready line, and runs a terminal process through it. */
async function runAgentProcess(entry: string): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'hc-agent-main-'));
  const sock = join(dir, 'a.sock');
  const child = spawn(process.execPath, [entry, '--listen', sock], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    let out = '';
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes(`${READY_LINE}\n`)) resolve();
      });
      child.once('exit', (code) => reject(new Error(`agent exited (${code}): ${out}`)));
    });
    const c = await AgentTestClient.connect(sock);
    try {
      assert.equal((await c.call('Hello', {})).nodeVersion, process.version);
      // A terminal loads node-pty at run time: proves it resolves from this entry's location.
      const r = await c.run(['sh', '-c', 'tty'], { terminal: true });
      assert.match(r.stdout.toString(), /^\/dev\/pts\/\d+/);
      await c.call('Shutdown', {});
    } finally {
      c.close();
    }
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    assert.equal(code, 0, 'dev mode: Shutdown exits the agent instead of powering off');
  } finally {
    child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
}

test('main.js --listen prints the ready line and serves', async () => {
  await runAgentProcess(fileURLToPath(new URL('./main.js', import.meta.url)));
});

test('the bundle (dist/agent/agent.js) runs the same way, with node-pty outside it', async (t) => {
  const bundle = fileURLToPath(new URL('../../agent/agent.js', import.meta.url));
  if (!existsSync(bundle)) return t.skip('no bundle: run npm run build');
  await runAgentProcess(bundle);
});
