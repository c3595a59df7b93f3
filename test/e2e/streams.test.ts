/**
 * Bounded buffers on a real QEMU guest: a workload that floods 100 MiB of output keeps the VM's log
 * files within their caps (at every moment, not eventually), and exec clients that never read (a
 * WebSocket and a gRPC call, both paused) do not grow the daemon's memory.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { WebSocket } from 'ws';
import { loadVmServiceDefinition } from '../../src/api/proto.js';
import { startRegistry, type RegistryProcess } from '../../src/images/registry/testing/registry-process.js';
import { pushBusyboxImage } from './busybox-image.js';
import { lastLine, sleep, TestDaemon, waitFor } from './harness.js';

const MiB = 1024 * 1024;
const FLOOD_BYTES = 100 * MiB;
/** The daemon's defaults: console.log 1 MiB, workload.log 16 MiB, each plus one rotated file. */
const LOG_FILES_CAP = 2 * 1 * MiB + 2 * 16 * MiB;

const daemon = new TestDaemon('hc-e2e-streams-');
let registry: RegistryProcess;
let vmId: string;

before(async () => {
  registry = await startRegistry();
  const imageRef = await pushBusyboxImage(registry, 'NAME="Hypercore streams test"\n');
  process.env['HYPERCORE_AGENT_TIMEOUT'] = '90';
  await daemon.start();
  const hac = join(daemon.dir, 'flood.toml');
  // 100 MiB of output as fast as the guest can, then a marker, then the VM stays up for the exec tests.
  const command = `yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c ${FLOOD_BYTES}; echo; echo flood-done; exec sleep 100000`;
  writeFileSync(hac, `[spacecore]\nname = "flood"\n[hardware]\nmemory = 256\nref = "${imageRef}"\n[workload]\ncommand = ["sh", "-c", "${command}"]\n[network]\nmode = "none"\n`);
  const spawned = daemon.cli(['spawn', '--hac', hac]);
  assert.equal(spawned.code, 0, `${spawned.stderr}\n${daemon.log()}`);
  vmId = lastLine(spawned.stdout);
});

after(async () => {
  await daemon.cleanup();
  await registry?.stop();
});

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function rssBytes(pid: number): number {
  const kib = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kib) * 1024;
}

test('a workload that prints 100 MiB: the log files stay within their caps throughout, and logs shows the newest output', async () => {
  const dir = join(daemon.root, 'vms', vmId);
  const files = ['console.log', 'console.log.1', 'workload.log', 'workload.log.1'].map((f) => join(dir, f));
  const offset = () => Number(readFileSync(join(dir, 'workload.offset'), 'utf8').trim() || 0);
  let peak = 0;
  const started = Date.now();
  await waitFor('the 100 MiB to reach the logs', 600_000, async () => {
    peak = Math.max(peak, files.reduce((sum, f) => sum + sizeOf(f), 0));
    await sleep(50);
    return sizeOf(join(dir, 'workload.offset')) > 0 && offset() > FLOOD_BYTES ? true : undefined;
  });
  const seconds = (Date.now() - started) / 1000;
  process.stdout.write(`# flood: ${FLOOD_BYTES / MiB} MiB through the logs in ${seconds.toFixed(1)} s; log files peaked at ${(peak / MiB).toFixed(2)} MiB (cap ${LOG_FILES_CAP / MiB} MiB)\n`);
  // The VMM's own console output (boot messages) is rotated by the daemon's timer, hence a little slack.
  assert.ok(peak <= LOG_FILES_CAP + 256 * 1024, `the VM's log files peaked at ${peak} bytes`);
  // `logs` prints up to 2 MiB here: more than the synchronous helper's output buffer.
  const logs = await daemon.cliAsync(['logs', vmId]);
  assert.equal(logs.code, 0, logs.stderr);
  assert.ok(logs.stdout.length <= 2 * MiB + 256 * 1024, `logs printed ${logs.stdout.length} bytes`);
  assert.ok(logs.stdout.trimEnd().endsWith('flood-done'), `logs ends with: ${JSON.stringify(logs.stdout.slice(-200))}`);
  assert.ok(readFileSync(join(dir, 'workload.log'), 'utf8').endsWith('flood-done\n'), 'workload.log ends with the newest output');

  // After a daemon crash, copying resumes at the stored offset: the agent's buffered output is not logged again.
  await daemon.kill9();
  await daemon.start();
  await sleep(8000);
  const again = await daemon.cliAsync(['logs', vmId]);
  assert.equal(again.stdout.split('flood-done').length - 1, 1, 'the marker is logged once');
});

/** Opens a WebSocket exec of `args`; `paused`: the client never reads what comes back. */
async function wsExec(args: string[], paused: boolean): Promise<WebSocket> {
  const ws = new WebSocket(`ws+unix://${daemon.socket}:/v1/vms/${vmId}/exec`);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => {
      ws.send(JSON.stringify({ start: { args } }));
      if (paused) ws.pause();
      resolve();
    });
    ws.once('error', reject);
  });
  return ws;
}

type ExecCall = grpc.ClientDuplexStream<object, { exited?: boolean }>;

function grpcExec(client: grpc.Client, args: string[], paused: boolean): ExecCall {
  const call = (client as unknown as { Exec(): ExecCall }).Exec();
  call.on('error', () => undefined);
  call.write({ start: { id: vmId, args } });
  if (paused) call.pause();
  return call;
}

test('exec clients that never read (WebSocket and gRPC, paused): the daemon RSS grows by less than 64 MiB', async () => {
  const pid = daemon.pid!;
  const Client = loadVmServiceDefinition();
  const client = new Client(`unix:${daemon.socket}`, grpc.credentials.createInsecure());
  // Warm up both transports first, so the baseline is a daemon that has served them.
  const warmWs = await wsExec(['true'], false);
  await new Promise((r) => warmWs.once('close', r));
  const warmCall = grpcExec(client, ['true'], false);
  await new Promise((r) => warmCall.on('data', (m: { exited?: boolean }) => m.exited && r(undefined)));
  await sleep(2000);

  const before = rssBytes(pid);
  const ws = await wsExec(['cat', '/dev/zero'], true);
  const call = grpcExec(client, ['cat', '/dev/zero'], true);
  let peak = before;
  for (let i = 0; i < 25; i++) {
    await sleep(1000);
    peak = Math.max(peak, rssBytes(pid));
  }
  process.stdout.write(`# RSS of hypercored: ${(before / MiB).toFixed(1)} MiB before, ${(peak / MiB).toFixed(1)} MiB at most over 25 s with two stalled exec clients of cat /dev/zero\n`);
  // The stalled processes still take input: kill them through their sessions, then leave.
  ws.send(JSON.stringify({ signal: 'SIGKILL' }));
  call.write({ signal: 'SIGKILL' });
  await sleep(1000);
  ws.terminate();
  call.cancel();
  client.close();
  assert.ok(peak - before < 64 * MiB, `the daemon grew by ${((peak - before) / MiB).toFixed(1)} MiB`);
  const r = daemon.cli(['exec', vmId, '--', 'echo', 'still-serving']);
  assert.equal(r.stdout, 'still-serving\n', r.stderr);
});
