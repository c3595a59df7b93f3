import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, existsSync, openSync, readFileSync, readSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { TtrpcClient, TtrpcServer } from '../../ttrpc/index.js';
import type { Logger } from '../../core/ports.js';
import { ControlProtocolError, LineReader, MAX_LINE_BYTES, parseToKeeper } from './control.js';
import { Keeper } from './keeper.js';
import { KeeperLink } from './link.js';
import { keeperTempDir, until } from './testing.js';

const TASK = 'containerd.task.v2.Task';
const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const quiet: Logger = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {}, child: () => quiet } as unknown as Logger;

function tmp(): string {
  return keeperTempDir(cleanups);
}

/** A keeper in a temporary directory and hypercored's link to it, both stopped after the test. */
async function keeperWithLink(): Promise<{ dir: string; keeper: Keeper; link: KeeperLink }> {
  const dir = tmp();
  const keeper = new Keeper(join(dir, 'keeper.sock'), () => {});
  await keeper.start();
  cleanups.push(() => keeper.stop());
  const link = new KeeperLink(dir, quiet);
  cleanups.push(() => link.stop());
  await link.start();
  return { dir, keeper, link };
}

test('control lines: only sockets directly in the keeper directory (fronts) or its back/ (backs); bad lines are refused with the reason', () => {
  const dir = '/run/hc/shim';
  assert.deepEqual(parseToKeeper(JSON.stringify({ op: 'listen', front: `${dir}/a.sock`, back: `${dir}/back/a.sock` }), dir), { op: 'listen', front: `${dir}/a.sock`, back: `${dir}/back/a.sock` });
  assert.deepEqual(parseToKeeper('{"op":"synced"}', dir), { op: 'synced' });
  for (const [line, reason] of [
    [JSON.stringify({ op: 'listen', front: '/etc/passwd.sock', back: `${dir}/back/a.sock` }), /front "\/etc\/passwd\.sock" is not a socket path directly in \/run\/hc\/shim/],
    [JSON.stringify({ op: 'listen', front: `${dir}/back/../a.sock`, back: `${dir}/back/a.sock` }), /is not a socket path/],
    [JSON.stringify({ op: 'listen', front: `${dir}/a.sock`, back: `${dir}/a.sock` }), /back .* is not a socket path directly in \/run\/hc\/shim\/back/],
    [JSON.stringify({ op: 'unlisten', front: `${dir}/keeper.log` }), /is not a socket path/],
    [JSON.stringify({ op: 'unlisten', front: 7 }), /front 7 is not a socket path/],
    [JSON.stringify({ op: 'exec', cmd: 'rm -rf /' }), /unknown control op "exec"/],
    ['not json', /a control line is not JSON/],
  ] as const) {
    assert.throws(() => parseToKeeper(line, dir), (err: unknown) => err instanceof ControlProtocolError && reason.test(err.message), line);
  }
  const lines = new LineReader();
  assert.deepEqual(lines.push(Buffer.from('{"op":"synced"}\n{"op"')), ['{"op":"synced"}']);
  assert.deepEqual(lines.push(Buffer.from(':"synced"}\n')), ['{"op":"synced"}']);
  assert.throws(() => lines.push(Buffer.alloc(MAX_LINE_BYTES + 1, 'x')), /longer than 65536 bytes/);
});

test('the keeper listens where hypercored says (0600), relays to hypercored, and after a new hypercored syncs it closes the sockets of pods it did not list', async () => {
  const dir = tmp();
  const keeper = new Keeper(join(dir, 'keeper.sock'), () => {});
  await keeper.start();
  cleanups.push(() => keeper.stop());
  const servers: TtrpcServer[] = [];
  cleanups.push(async () => {
    for (const s of servers) await s.close();
  });
  const serve = async (name: string): Promise<void> => {
    const server = new TtrpcServer();
    server.register(TASK, { State: () => Buffer.from(`state from ${name}`) });
    await server.listen(join(dir, 'back', `${name}.sock`));
    servers.push(server);
  };
  // hypercored 1 serves pods a and b.
  const first = new KeeperLink(dir, quiet);
  cleanups.push(() => first.stop());
  await serve('a');
  await serve('b');
  await first.listen(join(dir, 'a.sock'), join(dir, 'back', 'a.sock'));
  await first.listen(join(dir, 'b.sock'), join(dir, 'back', 'b.sock'));
  first.synced();
  assert.equal(statSync(join(dir, 'a.sock')).mode & 0o777, 0o600);
  const a = await TtrpcClient.connect(join(dir, 'a.sock'));
  const b = await TtrpcClient.connect(join(dir, 'b.sock'));
  cleanups.push(() => (a.close(), b.close()));
  assert.equal(Buffer.from(await a.call(TASK, 'State', new Uint8Array(0))).toString(), 'state from a');

  // hypercored 1 goes; hypercored 2 knows only pod a (b went meanwhile).
  first.stop();
  const second = new KeeperLink(dir, quiet);
  cleanups.push(() => second.stop());
  await second.start();
  await second.listen(join(dir, 'a.sock'), join(dir, 'back', 'a.sock'));
  second.synced();
  await until('pod b to be closed', () => b.closed && !existsSync(join(dir, 'b.sock')));
  assert.equal(a.closed, false);
  assert.equal(Buffer.from(await a.call(TASK, 'State', new Uint8Array(0))).toString(), 'state from a');
  assert.equal(keeper.connections(join(dir, 'a.sock')).length, 1);
});

test('hypercored starts a keeper process when none answers, and another when it is killed', async () => {
  const dir = tmp();
  const link = new KeeperLink(dir, quiet);
  await link.start();
  const pid = await link.keeperPid();
  assert.notEqual(pid, process.pid, 'the keeper is a process of its own');
  let next: number | undefined;
  cleanups.push(() => {
    for (const p of [pid, next]) {
      try {
        if (p) process.kill(p, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  });
  const server = new TtrpcServer();
  server.register(TASK, { State: () => Buffer.from('ok') });
  await server.listen(join(dir, 'back', 'p.sock'));
  cleanups.push(() => server.close());
  await link.listen(join(dir, 'p.sock'), join(dir, 'back', 'p.sock'));
  process.kill(pid, 'SIGKILL');
  await until('a new keeper', () => link.pid !== undefined && link.pid !== pid);
  next = link.pid;
  assert.equal(await link.keeperPid(), next);
  // The new keeper was told the pod socket again.
  await until('the pod socket again', () => existsSync(join(dir, 'p.sock')));
  let client: TtrpcClient | undefined;
  for (let i = 0; i < 100 && !client; i++) client = await TtrpcClient.connect(join(dir, 'p.sock')).catch(() => new Promise<undefined>((r) => setTimeout(() => r(undefined), 20)));
  cleanups.push(() => client?.close());
  assert.equal(Buffer.from(await client!.call(TASK, 'State', new Uint8Array(0))).toString(), 'ok');
  link.stop();
});

test('a keeper that went away is forgotten: its pid (which the system may give to another process) is never reported again', async () => {
  const { keeper, link } = await keeperWithLink();
  assert.equal(await link.keeperPid(), process.pid, 'the in-process keeper said hello');
  await keeper.stop();
  await until('the link to see the keeper go', () => link.pid === undefined);
  // A stopping hypercored names no keeper, and starts none to name.
  link.stop();
  await assert.rejects(link.keeperPid(), /stopping/);
  assert.equal(link.pid, undefined);
});

test('a hypercored without pods starts no keeper: reconnect only meets one that runs', async () => {
  const dir = tmp();
  const link = new KeeperLink(dir, quiet);
  cleanups.push(() => link.stop());
  await link.reconnect();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(link.pid, undefined, 'no keeper answered');
  assert.equal(existsSync(join(dir, 'keeper.sock')), false, 'none was started');
  const keeper = new Keeper(join(dir, 'keeper.sock'), () => {});
  await keeper.start();
  cleanups.push(() => keeper.stop());
  await link.reconnect();
  await until('the running keeper to say hello', () => link.pid !== undefined);
});

test('held FIFOs: only FIFOs someone reads are opened (a regular file or a link a path names never is); the reader sees end of file only once released', async () => {
  const { dir, keeper, link } = await keeperWithLink();
  const fifo = join(dir, 'out');
  execFileSync('mkfifo', [fifo]);
  const unread = join(dir, 'unread');
  execFileSync('mkfifo', [unread]);
  const victim = join(dir, 'victim');
  writeFileSync(victim, 'precious\n');
  symlinkSync(fifo, join(dir, 'link'));
  const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  cleanups.push(() => closeSync(reader));
  const readsEof = (): boolean => {
    try {
      return readSync(reader, Buffer.alloc(16)) === 0;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return false; // a writer is there
      throw err;
    }
  };
  assert.equal(readsEof(), true, 'no writer yet');
  link.hold('p1', [victim, join(dir, 'link')]);
  link.hold('p2', [fifo, unread]);
  await until('the FIFO to be held', () => keeper.heldFds === 1);
  assert.equal(readsEof(), false, 'the keeper holds a writer');
  assert.equal(readFileSync(victim, 'utf8'), 'precious\n');
  link.release('p2');
  await until('the FIFO to be let go', () => keeper.heldFds === 0);
  assert.equal(readsEof(), true);
});

test('a held stdin FIFO: containerd\'s writes while hypercored is away get no broken pipe and reach the next hypercored; a file named as stdin is never opened', async () => {
  const { dir, keeper, link } = await keeperWithLink();
  const stdin = join(dir, 'stdin');
  execFileSync('mkfifo', [stdin]);
  const victim = join(dir, 'victim');
  writeFileSync(victim, 'precious\n');
  const fds: number[] = [];
  const opened = (flags: number): number => {
    const fd = openSync(stdin, flags | constants.O_NONBLOCK);
    fds.push(fd);
    return fd;
  };
  cleanups.push(() => fds.splice(0).forEach((fd) => closeSync(fd)));
  const daemon = opened(constants.O_RDONLY); // hypercored reading the process's stdin
  const containerd = opened(constants.O_WRONLY);
  link.hold('p1', [], victim);
  link.hold('p2', [], stdin);
  await until('the stdin FIFO to be held', () => keeper.heldFds === 1);
  closeSync(fds.splice(fds.indexOf(daemon), 1)[0]!); // hypercored is killed
  assert.equal(writeSync(containerd, 'typed while away\n'), 17, 'no EPIPE: the keeper is a reader');
  const next = opened(constants.O_RDONLY); // the next hypercored
  const buf = Buffer.alloc(64);
  assert.equal(buf.toString('utf8', 0, readSync(next, buf)), 'typed while away\n');
  assert.equal(readFileSync(victim, 'utf8'), 'precious\n');
  link.release('p2');
  await until('the FIFO to be let go', () => keeper.heldFds === 0);
  closeSync(fds.splice(fds.indexOf(next), 1)[0]!);
  assert.throws(() => writeSync(containerd, 'x'), { code: 'EPIPE' }, 'released: no reader is left');
});
