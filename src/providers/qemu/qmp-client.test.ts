import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCodes, ProviderFailedError } from '../../core/errors.js';
import { runCommand } from '../../system/command.js';
import { QmpClient, QmpCommandError, QmpError, type QmpEvent } from './qmp-client.js';
import { QmpLineSplitter, QmpLineTooLongError } from './qmp-framing.js';
import { parseQmpLine } from './qmp-protocol.js';

const GREETING = '{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "test"}, "capabilities": ["oob"]}}\r\n';
const TS = '"timestamp": {"seconds": 1700000000, "microseconds": 5}';

type Request = { execute: string; id?: unknown; arguments?: unknown };

/** What the fake server does with each parsed request; `conn` writes raw text. */
type Script = (req: Request, conn: Socket, state: { seen: Request[] }) => void;

/** A unix-socket QMP server for one test; answers qmp_capabilities unless the script does. */
async function fakeQmp(
  dir: string,
  script: Script,
  opts: { greeting?: string | null; answerCapabilities?: boolean } = {},
): Promise<{ path: string; server: Server; seen: Request[]; sockets: Set<Socket> }> {
  const path = join(dir, `qmp-${Math.random().toString(36).slice(2)}.sock`);
  const seen: Request[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((conn) => {
    sockets.add(conn);
    conn.on('close', () => sockets.delete(conn));
    conn.on('error', () => {});
    const greeting = opts.greeting === undefined ? GREETING : opts.greeting;
    if (greeting !== null) conn.write(greeting);
    const splitter = new QmpLineSplitter(1 << 20);
    conn.on('data', (chunk: Buffer) => {
      for (const line of splitter.push(chunk)) {
        const req = JSON.parse(line) as Request;
        seen.push(req);
        if (req.execute === 'qmp_capabilities' && opts.answerCapabilities !== false) conn.write(`{"return": {}, "id": ${JSON.stringify(req.id)}}\r\n`);
        else script(req, conn, { seen });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { path, server, seen, sockets };
}

function reply(conn: Socket, req: Request, value: unknown): void {
  conn.write(`${JSON.stringify({ return: value, id: req.id })}\r\n`);
}

function stopServer(s: { server: Server; sockets: Set<Socket> }): Promise<void> {
  for (const sock of s.sockets) sock.destroy();
  return new Promise((resolve) => s.server.close(() => resolve()));
}

describe('QmpLineSplitter', () => {
  test('splits CRLF and LF lines, keeps partial lines across chunks, skips empty lines', () => {
    const s = new QmpLineSplitter(1024);
    assert.deepEqual(s.push(Buffer.from('{"a":1}\r\n{"b"')), ['{"a":1}']);
    assert.equal(s.pendingBytes, 4);
    assert.deepEqual(s.push(Buffer.from(':2}\r')), []);
    assert.deepEqual(s.push(Buffer.from('\n\r\n\n{"c":3}\n')), ['{"b":2}', '{"c":3}']);
    assert.equal(s.pendingBytes, 0);
  });

  test('decodes a multi-byte UTF-8 character split across chunks', () => {
    const s = new QmpLineSplitter(1024);
    const bytes = Buffer.from('{"desc":"é"}\n');
    const cut = bytes.indexOf(0xc3) + 1;
    assert.deepEqual(s.push(bytes.subarray(0, cut)), []);
    assert.deepEqual(s.push(bytes.subarray(cut)), ['{"desc":"é"}']);
  });

  test('rejects a line longer than the limit, terminated or not', () => {
    assert.throws(() => new QmpLineSplitter(16).push(Buffer.alloc(40, 0x61)), QmpLineTooLongError);
    const s = new QmpLineSplitter(16);
    s.push(Buffer.alloc(10, 0x61));
    assert.throws(() => s.push(Buffer.from('aaaaaaaaaa\n')), QmpLineTooLongError);
    assert.deepEqual(new QmpLineSplitter(16).push(Buffer.from(`${'a'.repeat(16)}\r\n`)), ['a'.repeat(16)]);
  });
});

describe('parseQmpLine', () => {
  test('classifies greeting, event, return and error; rejects garbage', () => {
    const g = parseQmpLine(GREETING.trim());
    assert.equal(g.kind, 'greeting');
    assert.equal(g.kind === 'greeting' && g.greeting.version.qemu.major, 7);
    assert.deepEqual(parseQmpLine(`{${TS}, "event": "STOP"}`), {
      kind: 'event',
      event: { event: 'STOP', data: {}, timestamp: { seconds: 1700000000, microseconds: 5 } },
    });
    assert.deepEqual(parseQmpLine('{"return": {"x": 1}, "id": 3}'), { kind: 'return', id: 3, value: { x: 1 } });
    assert.deepEqual(parseQmpLine('{"id": 4, "error": {"class": "GenericError", "desc": "no"}}'), {
      kind: 'error',
      id: 4,
      errorClass: 'GenericError',
      desc: 'no',
    });
    assert.throws(() => parseQmpLine('hello'), /not JSON/);
    assert.throws(() => parseQmpLine('[1]'), /not a JSON object/);
    assert.throws(() => parseQmpLine('{"foo": 1}'), /unknown QMP message/);
  });
});

describe('QmpClient against a fake server', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hc-qmp-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('negotiates capabilities first, sends ids, matches replies by id even out of order', async () => {
    const held: Request[] = [];
    const srv = await fakeQmp(dir, (req, conn) => {
      held.push(req);
      // Answer both once both arrived, in reverse order, to prove matching is by id.
      if (held.length === 2) for (const r of [...held].reverse()) reply(conn, r, { echo: r.execute, args: r.arguments ?? null });
    });
    const client = await QmpClient.connect(srv.path, { timeoutMs: 2000 });
    try {
      assert.equal(client.greeting.version.qemu.minor, 2);
      assert.equal(srv.seen[0]?.execute, 'qmp_capabilities');
      const [a, b] = await Promise.all([client.execute('first', { n: 1 }), client.execute('second')]);
      assert.deepEqual(a, { echo: 'first', args: { n: 1 } });
      assert.deepEqual(b, { echo: 'second', args: null });
      const ids = srv.seen.map((r) => r.id);
      assert.ok(ids.every((id) => typeof id === 'number'), 'every command carries a numeric id');
      assert.equal(new Set(ids).size, ids.length, 'ids are unique');
    } finally {
      await client.close();
      await stopServer(srv);
    }
  });

  test('delivers events that arrive between a command and its reply', async () => {
    const srv = await fakeQmp(dir, (req, conn) => {
      conn.write(`{${TS}, "event": "STOP"}\r\n{${TS}, "event": "BLOCK_JOB_READY", "data": {"device": "d0"}}\r\n`);
      reply(conn, req, {});
    });
    const client = await QmpClient.connect(srv.path, { timeoutMs: 2000 });
    try {
      const events: QmpEvent[] = [];
      const off = client.on('event', (ev) => events.push(ev));
      assert.deepEqual(await client.execute('stop'), {});
      assert.deepEqual(
        events.map((e) => [e.event, e.data]),
        [
          ['STOP', {}],
          ['BLOCK_JOB_READY', { device: 'd0' }],
        ],
      );
      assert.equal(events[0]?.timestamp.seconds, 1700000000);
      off();
      await client.execute('stop');
      assert.equal(events.length, 2, 'no events after unsubscribing');
    } finally {
      await client.close();
      await stopServer(srv);
    }
  });

  test('an error reply rejects with class and desc, and the connection stays usable', async () => {
    const srv = await fakeQmp(dir, (req, conn) => {
      if (req.execute === 'nope') conn.write(`{"id": ${JSON.stringify(req.id)}, "error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}}\r\n`);
      else reply(conn, req, { status: 'running', singlestep: false, running: true });
    });
    const client = await QmpClient.connect(srv.path, { timeoutMs: 2000 });
    try {
      await assert.rejects(client.execute('nope'), (err: unknown) => {
        assert.ok(err instanceof QmpCommandError);
        assert.ok(err instanceof ProviderFailedError);
        assert.equal(err.code, ErrorCodes.providerFailed);
        assert.equal(err.kind, 'command');
        assert.equal(err.command, 'nope');
        assert.equal(err.errorClass, 'CommandNotFound');
        assert.equal(err.desc, 'The command nope has not been found');
        return true;
      });
      assert.deepEqual(await client.queryStatus(), { status: 'running', running: true });
    } finally {
      await client.close();
      await stopServer(srv);
    }
  });

  test('reassembles greeting, events and replies sent one byte at a time', async () => {
    const dribble = (conn: Socket, text: string): void => {
      let i = 0;
      const tick = (): void => {
        if (i < text.length && !conn.destroyed) {
          conn.write(text[i++]!);
          setImmediate(tick);
        }
      };
      tick();
    };
    const srv = await fakeQmp(
      dir,
      (req, conn) => dribble(conn, `{${TS}, "event": "RESUME"}\r\n{"return": {"status": "paused", "running": false, "singlestep": false}, "id": ${JSON.stringify(req.id)}}\r\n`),
      { greeting: null },
    );
    srv.server.on('connection', (conn) => dribble(conn, GREETING));
    const client = await QmpClient.connect(srv.path, { timeoutMs: 5000 });
    try {
      const events: string[] = [];
      client.on('event', (ev) => events.push(ev.event));
      assert.deepEqual(await client.queryStatus(), { status: 'paused', running: false });
      assert.deepEqual(events, ['RESUME']);
    } finally {
      await client.close();
      await stopServer(srv);
    }
  });

  test('the server closing fires onClose and `closed`, and rejects pending and later commands', async () => {
    const srv = await fakeQmp(dir, (_req, conn) => conn.end());
    const client = await QmpClient.connect(srv.path, { timeoutMs: 2000 });
    const viaCallback = new Promise((resolve) => client.onClose(resolve));
    try {
      await assert.rejects(client.execute('quit'), (err: unknown) => err instanceof QmpError && err.kind === 'closed');
      assert.deepEqual(await client.closed, { byClient: false });
      assert.deepEqual(await viaCallback, { byClient: false });
      assert.equal(client.isClosed, true);
      await assert.rejects(client.execute('query-status'), (err: unknown) => err instanceof QmpError && err.kind === 'closed');
    } finally {
      await client.close();
      await stopServer(srv);
    }
  });

  test('close() by the client resolves `closed` with byClient and rejects what is in flight', async () => {
    const srv = await fakeQmp(dir, () => {});
    const client = await QmpClient.connect(srv.path, { timeoutMs: 2000 });
    const pending = client.execute('stop');
    await client.close();
    await assert.rejects(pending, (err: unknown) => err instanceof QmpError && err.kind === 'closed');
    assert.deepEqual(await client.closed, { byClient: true });
    await stopServer(srv);
  });

  test('a command without reply times out; its late reply is ignored and the next command works', async () => {
    let first: Request | undefined;
    const srv = await fakeQmp(dir, (req, conn) => {
      if (!first) first = req;
      else {
        reply(conn, first, 'late');
        reply(conn, req, 'second');
      }
    });
    const client = await QmpClient.connect(srv.path, { timeoutMs: 2000 });
    try {
      const started = Date.now();
      await assert.rejects(client.execute('slow', undefined, { timeoutMs: 100 }), (err: unknown) => {
        assert.ok(err instanceof QmpError);
        assert.equal(err.kind, 'timeout');
        assert.equal(err.command, 'slow');
        return true;
      });
      assert.ok(Date.now() - started < 1000);
      assert.equal(await client.execute('next'), 'second');
    } finally {
      await client.close();
      await stopServer(srv);
    }
  });

  test('keeps at most maxInFlight commands outstanding', async () => {
    let outstanding: Request[] = [];
    let maxSeen = 0;
    const srv = await fakeQmp(dir, (req, conn) => {
      outstanding.push(req);
      maxSeen = Math.max(maxSeen, outstanding.length);
      setTimeout(() => {
        outstanding = outstanding.filter((r) => r !== req);
        reply(conn, req, req.id);
      }, 5);
    });
    const client = await QmpClient.connect(srv.path, { timeoutMs: 2000, maxInFlight: 2 });
    try {
      const results = await Promise.all(Array.from({ length: 6 }, (_, i) => client.execute(`c${i}`)));
      assert.equal(results.length, 6);
      assert.equal(maxSeen, 2);
    } finally {
      await client.close();
      await stopServer(srv);
    }
  });

  test('connect rejects with kind "refused" when no socket exists', async () => {
    await assert.rejects(QmpClient.connect(join(dir, 'absent.sock'), { timeoutMs: 1000 }), (err: unknown) => {
      assert.ok(err instanceof QmpError);
      assert.equal(err.kind, 'refused');
      assert.equal(err.code, ErrorCodes.providerFailed);
      return true;
    });
  });

  test('connect times out when the greeting or the capabilities reply never comes', async () => {
    const silent = await fakeQmp(dir, () => {}, { greeting: null });
    const noCaps = await fakeQmp(dir, () => {}, { answerCapabilities: false });
    try {
      for (const [srv, phase] of [
        [silent, /waiting for the greeting/],
        [noCaps, /negotiating capabilities/],
      ] as const) {
        const started = Date.now();
        await assert.rejects(QmpClient.connect(srv.path, { timeoutMs: 150 }), (err: unknown) => {
          assert.ok(err instanceof QmpError, String(err));
          assert.equal(err.kind, 'timeout');
          assert.match(err.message, phase);
          return true;
        });
        assert.ok(Date.now() - started < 1500);
      }
    } finally {
      await stopServer(silent);
      await stopServer(noCaps);
    }
  });

  test('garbage instead of a greeting, or after it, is a protocol error that closes the connection', async () => {
    const notQmp = await fakeQmp(dir, () => {}, { greeting: 'SSH-2.0-OpenSSH\r\n' });
    const eventFirst = await fakeQmp(dir, () => {}, { greeting: `{${TS}, "event": "STOP"}\r\n` });
    const laterGarbage = await fakeQmp(dir, (_req, conn) => conn.write('{"return": {}, "id": 2\r\n'));
    try {
      for (const srv of [notQmp, eventFirst]) {
        await assert.rejects(QmpClient.connect(srv.path, { timeoutMs: 1000 }), (err: unknown) => err instanceof QmpError && err.kind === 'protocol');
      }
      const client = await QmpClient.connect(laterGarbage.path, { timeoutMs: 1000 });
      await assert.rejects(client.execute('x'), (err: unknown) => err instanceof QmpError && err.kind === 'protocol');
      const info = await client.closed;
      assert.equal(info.byClient, false);
      assert.equal(info.error?.kind, 'protocol');
    } finally {
      await stopServer(notQmp);
      await stopServer(eventFirst);
      await stopServer(laterGarbage);
    }
  });

  test('a line over maxLineBytes breaks the connection with a protocol error', async () => {
    const srv = await fakeQmp(dir, (_req, conn) => conn.write('x'.repeat(4096)));
    const client = await QmpClient.connect(srv.path, { timeoutMs: 1000, maxLineBytes: 1024 });
    try {
      await assert.rejects(client.execute('big'), (err: unknown) => err instanceof QmpError && err.kind === 'protocol' && /exceeds 1024 bytes/.test(err.message));
    } finally {
      await client.close();
      await stopServer(srv);
    }
  });

  test('queryStatus rejects a reply without status/running', async () => {
    const srv = await fakeQmp(dir, (req, conn) => reply(conn, req, { status: 'running' }));
    const client = await QmpClient.connect(srv.path, { timeoutMs: 1000 });
    try {
      await assert.rejects(client.queryStatus(), (err: unknown) => err instanceof QmpError && err.kind === 'protocol');
    } finally {
      await client.close();
      await stopServer(srv);
    }
  });
});

describe('QmpClient against a real QEMU', () => {
  test('query-status, stop with its event, quit closes the connection', { timeout: 30_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hc-qmp-qemu-'));
    const sock = join(dir, 'qmp.sock');
    const pidfile = join(dir, 'qemu.pid');
    // setpriv: QEMU dies with the test process; timeoutMs: runCommand kills it if all else fails.
    const qemu = runCommand(
      'setpriv',
      ['--pdeathsig', 'KILL', 'qemu-system-x86_64', '-M', 'none', '-nodefaults', '-display', 'none', '-no-user-config', '-pidfile', pidfile, '-qmp', `unix:${sock},server=on,wait=off`],
      { timeoutMs: 20_000 },
    );
    const exited = qemu.then(
      (r) => ({ exitCode: r.exitCode }),
      (err: unknown) => ({ error: err }),
    );
    let client: QmpClient | undefined;
    try {
      const deadline = Date.now() + 10_000;
      for (;;) {
        try {
          client = await QmpClient.connect(sock, { timeoutMs: 2000 });
          break;
        } catch (err) {
          if (!(err instanceof QmpError && err.kind === 'refused') || Date.now() > deadline) throw err;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      assert.equal(client.greeting.version.qemu.major, 7);
      assert.deepEqual(await client.queryStatus(), { status: 'running', running: true });
      const events: string[] = [];
      client.on('event', (ev) => events.push(ev.event));
      await client.execute('stop');
      assert.deepEqual(await client.queryStatus(), { status: 'paused', running: false });
      assert.ok(events.includes('STOP'), `events: ${events.join(',')}`);
      await assert.rejects(client.execute('no-such-command'), (err: unknown) => err instanceof QmpCommandError && err.errorClass === 'CommandNotFound');
      // QEMU may close the socket right after (or before flushing) the quit reply.
      await client.execute('quit').catch((err: unknown) => assert.ok(err instanceof QmpError && err.kind === 'closed', String(err)));
      const info = await client.closed;
      assert.equal(info.byClient, false);
      assert.equal(info.error, undefined);
      assert.ok(events.includes('SHUTDOWN'), `events: ${events.join(',')}`);
      assert.deepEqual(await exited, { exitCode: 0 });
    } finally {
      await client?.close();
      const pid = Number((await readFile(pidfile, 'utf8').catch(() => '')).trim());
      if (pid > 0) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Already gone: the normal case after quit.
        }
      }
      await exited;
      await rm(dir, { recursive: true, force: true });
    }
  });
});
