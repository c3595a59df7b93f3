/**
 * Interoperability with the real Go ttrpc (containerd 1.6.20 from Debian vendors ttrpc v1.1.1):
 * - our client → a private containerd's `containerd.sock.ttrpc` (Events service, errors, size limit);
 * - a Go client (`ctr shim`, same vendored ttrpc) → our server.
 * Skipped with a reason when containerd/ctr are not installed (`apt-get install -y containerd`) or not root.
 * Never send Events/Forward without an envelope: containerd 1.6.20 dereferences it and the daemon panics.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import protobuf from 'protobufjs/minimal.js';
import { TtrpcClient } from './client.js';
import { TtrpcError } from './errors.js';
import { encodeFrame, MESSAGE_LENGTH_MAX, MessageType, writeHeader } from './framing.js';
import { decodeResponse, encodeRequest } from './messages.js';
import { rawConnect, sleep } from './fixtures.js';
import { TtrpcServer } from './server.js';

const EVENTS = 'containerd.services.events.ttrpc.v1.Events';
const NS = 'hctest';

function which(bin: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    const p = join(dir, bin);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not in this dir
    }
  }
  return undefined;
}

const containerd = which('containerd');
const ctr = which('ctr');
const skip = !containerd
  ? 'containerd not installed (apt-get install -y containerd) — skipping Go ttrpc interop'
  : process.getuid?.() !== 0
    ? 'containerd interop needs root — skipping'
    : false;

/** containerd.services.events.ttrpc.v1.ForwardRequest{envelope{timestamp, namespace, topic, event: TaskExit}}. */
function forwardRequest(namespace: string, topic: string, containerId: string): Uint8Array {
  const W = protobuf.Writer;
  const taskExit = W.create().uint32(10).string(containerId).uint32(24).uint32(4242).uint32(32).uint32(3).finish();
  const w = W.create();
  w.uint32(10).fork(); // envelope
  w.uint32(10).fork().uint32(8).int64(Math.floor(Date.now() / 1000)).ldelim(); // timestamp.seconds
  if (namespace) w.uint32(18).string(namespace);
  w.uint32(26).string(topic);
  w.uint32(34).fork().uint32(10).string('containerd.events.TaskExit').uint32(18).bytes(taskExit).ldelim();
  w.ldelim();
  return w.finish();
}

describe('interop with Go ttrpc (containerd 1.6)', { skip }, () => {
  let dir = '';
  let child: ChildProcess | undefined;
  let client: TtrpcClient;
  const killChild = (): void => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hc-ctrd-'));
    writeFileSync(
      join(dir, 'config.toml'),
      [
        'version = 2',
        `root = "${dir}/root"`,
        `state = "${dir}/state"`,
        // CRI would open a streaming port and look for CNI configs; nothing here needs it.
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        '[grpc]',
        `  address = "${dir}/containerd.sock"`,
        '[ttrpc]',
        `  address = "${dir}/containerd.sock.ttrpc"`,
        '[debug]',
        '  level = "debug"',
        '',
      ].join('\n'),
    );
    const log = openSync(join(dir, 'containerd.log'), 'w');
    // setpriv --pdeathsig KILL: containerd dies with this test process even if `after` never runs.
    const setpriv = which('setpriv');
    const argv = [containerd!, '--config', join(dir, 'config.toml')];
    child = setpriv ? spawn(setpriv, ['--pdeathsig', 'KILL', ...argv], { stdio: ['ignore', log, log] }) : spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', log, log] });
    closeSync(log);
    process.once('exit', killChild);
    const sock = join(dir, 'containerd.sock.ttrpc');
    for (let i = 0; !existsSync(sock); i++) {
      if (child.exitCode !== null || i > 150) throw new Error(`containerd did not start:\n${readFileSync(join(dir, 'containerd.log'), 'utf8').slice(-2000)}`);
      await sleep(100);
    }
    client = await TtrpcClient.connect(sock);
  });

  after(async () => {
    client?.close();
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(5000)]);
      killChild();
    }
    process.off('exit', killChild);
    rmSync(dir, { recursive: true, force: true });
  });

  test('Events/Forward with a valid envelope → empty response, and containerd logs the event', async () => {
    const res = await client.call(EVENTS, 'Forward', forwardRequest(NS, '/tasks/exit', 'c1'), {
      metadata: { 'containerd-namespace-ttrpc': NS },
      timeoutMs: 5000,
    });
    assert.equal(res.length, 0);
    await sleep(200);
    assert.match(readFileSync(join(dir, 'containerd.log'), 'utf8'), /event forwarded.*topic=\/tasks\/exit/);
  });

  test('Go status errors decode: INVALID_ARGUMENT, UNIMPLEMENTED, INTERNAL', async () => {
    await assert.rejects(client.call(EVENTS, 'Forward', forwardRequest('', '/tasks/exit', 'c1')), (e: unknown) => e instanceof TtrpcError && e.code === 3 && /invalid namespace/.test(e.message));
    await assert.rejects(client.call(EVENTS, 'Nope', new Uint8Array(0)), (e: unknown) => e instanceof TtrpcError && e.code === 12 && e.message === 'method Nope');
    await assert.rejects(client.call('no.Such', 'X', new Uint8Array(0)), (e: unknown) => e instanceof TtrpcError && e.code === 12 && e.message === 'service no.Such');
    await assert.rejects(client.call(EVENTS, 'Forward', Uint8Array.of(0xff, 0xff)), (e: unknown) => e instanceof TtrpcError && e.code === 13);
  });

  test('50 concurrent calls multiplexed on one connection', async () => {
    const calls = Array.from({ length: 50 }, (_, i) => client.call(EVENTS, 'Forward', forwardRequest(NS, '/tasks/exit', `c${i}`), { timeoutMs: 5000 }));
    for (const r of await Promise.all(calls)) assert.equal(r.length, 0);
  });

  test('a 4 MiB request frame is accepted by Go; an oversized raw frame gets RESOURCE_EXHAUSTED and the connection survives', async () => {
    // Measured with a payload whose length varint has the same size (4 bytes) as the final one.
    const probe = MESSAGE_LENGTH_MAX - 100;
    const overhead = encodeRequest({ service: EVENTS, method: 'Nope', payload: new Uint8Array(probe), timeoutNano: 0, metadata: [] }).length - probe;
    const exact = new Uint8Array(MESSAGE_LENGTH_MAX - overhead);
    assert.equal(encodeRequest({ service: EVENTS, method: 'Nope', payload: exact, timeoutNano: 0, metadata: [] }).length, MESSAGE_LENGTH_MAX);
    await assert.rejects(client.call(EVENTS, 'Nope', exact), (e: unknown) => e instanceof TtrpcError && e.code === 12);
    const raw = await rawConnect(join(dir, 'containerd.sock.ttrpc'));
    try {
      const big = Buffer.alloc(10 + MESSAGE_LENGTH_MAX + 1);
      writeHeader(big, 0, { length: MESSAGE_LENGTH_MAX + 1, streamId: 1, type: MessageType.Request, flags: 0 });
      raw.write(big);
      raw.write(encodeFrame(3, MessageType.Request, 0, encodeRequest({ service: EVENTS, method: 'Nope', payload: new Uint8Array(0), timeoutNano: 0, metadata: [] })));
      const seen: [number, number, string][] = [];
      for (let i = 0; i < 2; i++) {
        const ev = await raw.next();
        assert.equal(ev.kind, 'frame');
        if (ev.kind !== 'frame') return;
        assert.equal(ev.frame.type, MessageType.Response);
        const st = decodeResponse(ev.frame.data).status;
        seen.push([ev.frame.streamId, st?.code ?? 0, st?.message ?? '']);
      }
      assert.deepEqual(seen, [
        [1, 8, `message length ${MESSAGE_LENGTH_MAX + 1} exceed maximum message size of ${MESSAGE_LENGTH_MAX}`],
        [3, 12, 'method Nope'],
      ]);
    } finally {
      raw.close();
    }
  });

  test('Go client (ctr shim, ttrpc v1.1.1) → our server', { skip: ctr ? false : 'ctr not installed' }, async () => {
    // ctr shim dials /run/containerd/s/<sha256(address/ns/id)> (containerd 1.6 shim.SocketAddress); a unique
    // fake containerd address gives a unique socket name, removed again below.
    const id = `hc-ttrpc-${process.pid}`;
    const address = join(dir, 'no-such-containerd.sock');
    const sockDir = '/run/containerd/s';
    const created = ['/run/containerd', sockDir].filter((d) => !existsSync(d));
    mkdirSync(sockDir, { recursive: true });
    const path = join(sockDir, createHash('sha256').update(`${address}/${NS}/${id}`).digest('hex'));
    const seen: string[] = [];
    const server = new TtrpcServer();
    server.register('containerd.task.v2.Task', {
      State: async (payload) => {
        seen.push(`State ${Buffer.from(payload).toString('hex')}`);
        // StateResponse{id=1, bundle=2, pid=3, status=4 RUNNING(2)}
        return protobuf.Writer.create().uint32(10).string(id).uint32(18).string('/bundle').uint32(24).uint32(4242).uint32(32).int32(2).finish();
      },
      // DeleteResponse{pid=1, exit_status=2}
      Delete: async () => protobuf.Writer.create().uint32(8).uint32(1).uint32(16).uint32(42).finish(),
      Start: async () => {
        throw Object.assign(new Error('no such task'), { code: 5 });
      },
    });
    try {
      await server.listen(path);
      const run = (args: string[]): Promise<{ code: number; out: string; err: string }> =>
        new Promise((resolve) => {
          execFile(ctr!, ['--address', address, '--namespace', NS, 'shim', '--id', id, ...args], { timeout: 20_000 }, (e, out, err) => {
            resolve({ code: e ? Number((e as { code?: unknown }).code ?? 1) : 0, out, err });
          });
        });
      const state = await run(['state']);
      assert.equal(state.code, 0, state.err);
      assert.deepEqual(JSON.parse(state.out), { id, bundle: '/bundle', pid: 4242, status: 2, exited_at: '0001-01-01T00:00:00Z' });
      const expectedReq = Buffer.concat([Buffer.from([0x0a, id.length]), Buffer.from(id)]).toString('hex');
      assert.deepEqual(seen, [`State ${expectedReq}`]);
      const del = await run(['delete', id]);
      assert.equal(del.out.trim(), 'container deleted and returned exit status 42');
      const start = await run(['start', id]);
      assert.notEqual(start.code, 0);
      assert.match(start.err, /code = NotFound desc = no such task/);
    } finally {
      await server.close();
      rmSync(path, { force: true });
      for (const d of created.reverse()) {
        try {
          rmdirSync(d);
        } catch {
          // Someone else (a real shim) put something there meanwhile: leave it.
        }
      }
    }
  });
});
