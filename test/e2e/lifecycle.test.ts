/**
 * The whole life of a real microVM (QEMU, TCG on hosts without usable KVM): spawn, list through the
 * CLI, HTTP and gRPC, read the console, survive a daemon SIGKILL, stop, remove, leave nothing behind.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadVmServiceDefinition } from '../../src/api/proto.js';
import { buildDemoRootfs, DEMO_MARKER } from '../../src/guest/demo-rootfs.js';
import { loadStaticBusybox } from '../../src/guest/busybox.js';
import { encodeNewc } from '../../src/guest/newc.js';
import { gzipSync } from 'node:zlib';
import type { Vm } from '../../src/core/vm.js';
import { bootDir, isAlive, lastLine, TestDaemon, waitFor } from './harness.js';

const daemon = new TestDaemon('hc-e2e-life-');
let hacFile: string;

before(async () => {
  const drive = join(daemon.dir, 'rootfs.ext4');
  await buildDemoRootfs({ output: drive });
  hacFile = join(daemon.dir, 'hac.toml');
  writeFileSync(hacFile, `[spacecore]\nname = "life"\n[hardware]\ncores = 1\nmemory = 192\ndrive = "rootfs.ext4"\n[hypervisor]\nprovider = "qemu"\n[network]\nmode = "none"\n`);
  // As a set-up script or an older hypercored might have left them: world-readable.
  mkdirSync(daemon.root, { recursive: true });
  chmodSync(daemon.root, 0o755);
  writeFileSync(join(daemon.root, 'state.db'), '', { mode: 0o644 });
  await daemon.start();
});

after(async () => {
  await daemon.cleanup();
});

function listJson(): Vm[] {
  const r = daemon.cli(['ls', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Vm[];
}

function grpcCall<T>(method: string, request: object): Promise<T> {
  const Client = loadVmServiceDefinition();
  const client = new Client(`unix:${daemon.socket}`, grpc.credentials.createInsecure());
  return new Promise<T>((resolve, reject) => {
    const fn = (client as unknown as Record<string, (req: object, cb: (err: Error | null, res: T) => void) => void>)[method]!;
    fn.call(client, request, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res);
    });
  });
}

test('a VM lives from spawn to rm and leaves nothing behind', async (t) => {
  const spawnedAt = Date.now();
  const spawn = daemon.cli(['spawn', '--hac', hacFile]);
  assert.equal(spawn.code, 0, `spawn failed: ${spawn.stderr}\n${daemon.log()}`);
  const id = lastLine(spawn.stdout);
  assert.match(id, /^[0-9a-f]{16}$/);

  const [listed] = listJson();
  assert.equal(listed?.id, id);
  assert.equal(listed?.state, 'running');
  assert.equal(listed?.provider, 'qemu');
  const pid = listed!.pid!;
  assert.ok(isAlive(pid), 'the QEMU process runs');

  // Only the daemon's user can read its state, sockets and the VM's files (workload env, images).
  const modes: string[] = [];
  const walk = (path: string): void => {
    const st = statSync(path);
    modes.push(`${path.slice(daemon.dir.length)} ${(st.mode & 0o7777).toString(8)}`);
    if (st.isDirectory()) for (const name of readdirSync(path)) walk(join(path, name));
  };
  walk(daemon.root);
  walk(daemon.runDir);
  const open = modes.filter((m) => !/ [67]00$/.test(m) && !m.startsWith('/root/boot'));
  assert.deepEqual(open, [], 'every file 0600, every directory 0700');
  for (const must of ['/root 700', '/root/state.db 600', '/run 700', '/run/hypercore.sock 600', '/run/hypercore-grpc.sock 600', `/root/vms/${id} 700`, `/root/vms/${id}/console.log 600`]) {
    assert.ok(modes.includes(must), `${must} (have: ${modes.join(', ')})`);
  }

  // The same VM over HTTP (curl on the unix socket) and over gRPC (same socket).
  const http = JSON.parse(execFileSync('curl', ['-sf', '--unix-socket', daemon.socket, 'http://localhost/v1/vms'], { encoding: 'utf8' })) as { vms: Vm[] };
  assert.deepEqual(http.vms.map((v) => [v.id, v.state, v.pid]), [[id, 'running', pid]]);
  const viaGrpc = await grpcCall<{ vms: Vm[] }>('ListVms', {});
  assert.deepEqual(viaGrpc.vms.map((v) => [v.id, v.name, v.state, v.pid]), [[id, 'life', 'running', pid]]);
  const one = await grpcCall<Vm>('GetVm', { id: 'life' });
  assert.equal(one.spec.memoryMib, 192);

  // The guest's marker line reaches `hypercore logs`.
  await waitFor('the guest marker in `hypercore logs`', 90_000, () => (daemon.cli(['logs', id]).stdout.includes(DEMO_MARKER) ? true : undefined));
  const bootMs = Date.now() - spawnedAt;
  t.diagnostic(`spawn to marker: ${bootMs} ms`);
  console.log(`# measured: spawn to guest marker ${bootMs} ms`);

  // A daemon crash does not take the VM with it; a new daemon adopts it.
  await daemon.kill9();
  assert.ok(isAlive(pid), 'the VM survives SIGKILL of hypercored');
  await daemon.start();
  const [adopted] = listJson();
  assert.deepEqual([adopted?.id, adopted?.state, adopted?.pid], [id, 'running', pid]);

  const stop = daemon.cli(['stop', '-t', '3', id.slice(0, 6)]);
  assert.equal(stop.code, 0, stop.stderr);
  assert.equal(listJson()[0]?.state, 'stopped');
  assert.equal(isAlive(pid), false, 'stop ends the QEMU process');

  const rm = daemon.cli(['rm', 'life']);
  assert.equal(rm.code, 0, rm.stderr);
  assert.deepEqual(listJson(), []);
  assert.deepEqual(daemon.vmDirs(), [], 'no VM directory remains');
  assert.equal(existsSync(join(daemon.runDir, 'vms', id)), false);
  assert.deepEqual(daemon.strayProcesses(), [], 'no process of the test remains');
});

test('a kernel-only VM (kernel and initrd, no disk, no agent) boots, prints to its console and ends stopped with a clean exit', async () => {
  // An initramfs-only guest: static busybox and an /init that prints a line and powers off.
  const marker = 'hypercore-kernel-only: hello from the initramfs';
  const init = `#!/bin/busybox sh\n/bin/busybox echo "${marker}"\n/bin/busybox poweroff -f\n`;
  const initrd = join(daemon.dir, 'hello.cpio.gz');
  writeFileSync(initrd, gzipSync(encodeNewc([
    { type: 'dir', path: 'bin' },
    { type: 'dir', path: 'dev' },
    { type: 'chardev', path: 'dev/console', major: 5, minor: 1, mode: 0o600 },
    { type: 'file', path: 'bin/busybox', data: (await loadStaticBusybox()).data, mode: 0o755 },
    { type: 'file', path: 'init', data: Buffer.from(init), mode: 0o755 },
  ])));
  const file = join(daemon.dir, 'bare.toml');
  writeFileSync(file, `[spacecore]\nname = "bare"\n[hardware]\nmemory = 128\nkernel = "${join(bootDir, 'vmlinuz')}"\ninitrd = "hello.cpio.gz"\n[hypervisor]\nprovider = "qemu"\n[hypervisor.qemu]\naccel = "tcg"\n[network]\nmode = "none"\n`);
  const spawn = daemon.cli(['spawn', '--hac', file]);
  assert.equal(spawn.code, 0, `${spawn.stderr}\n${daemon.log()}`);
  const id = lastLine(spawn.stdout);
  const stopped = await waitFor('the guest to power off', 90_000, () => listJson().find((v) => v.id === id && v.state === 'stopped'));
  assert.equal(stopped.error, undefined, 'a clean power-off, not a failure');
  assert.match(daemon.cli(['logs', id]).stdout, new RegExp(marker));
  assert.equal(daemon.cli(['rm', id]).code, 0);
  assert.deepEqual(daemon.strayProcesses(), []);
});
