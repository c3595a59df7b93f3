/**
 * The guest side of the Firecracker path, for real, in QEMU guests (no host here can run
 * Firecracker or offers /dev/vhost-vsock):
 *  - the ELF vmlinux that set-up extracts boots (QEMU loads it through its PVH note), with the
 *    stage-1 initramfs and the guest system image;
 *  - the agent in vsock mode (socat relay) answers TTRPC over a real AF_VSOCK connection: the guest
 *    loads vsock_loopback and connects to its own agent (CID 1), tunnelled to the host through a
 *    process of the guest's virtio-serial agent;
 *  - `hc.agent=vsock:<port>` on the kernel command line puts the system image's init and agent in
 *    vsock mode, and `hc.poweroff=reboot` makes the guest reboot to power off (what ends Firecracker).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SyncReplyScanner, syncRequest } from '../../src/agent/protocol/channel-sync.js';
import { TtrpcAgentConnector, TtrpcAgentSession } from '../../src/agent-client/agent-session.js';
import type { ProcessEvent } from '../../src/core/agent.js';
import type { LaunchRequest, Logger, VmPaths } from '../../src/core/ports.js';
import { bootAssetPaths, readBootManifest } from '../../src/guest/boot-assets.js';
import { ensureSystemImage } from '../../src/guest/system-image.js';
import { kernelImageKind } from '../../src/guest/vmlinux.js';
import { QemuProvider } from '../../src/providers/qemu/qemu-provider.js';
import { TtrpcClient, type Transport } from '../../src/ttrpc/index.js';
import { bootDir, sleep, TestDaemon, waitFor } from './harness.js';

const scratch = new TestDaemon('hc-e2e-gvsock-');
const quiet: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined, child: () => quiet };
const provider = new QemuProvider({ logger: quiet, workDir: join(scratch.dir, 'probe') });
const assets = bootAssetPaths(bootDir);
let systemImage: string;
let modules: string[];
const launched: { id: string; paths: VmPaths; pid: number }[] = [];

before(async () => {
  assert.ok(existsSync(assets.kernelElf), `${assets.kernelElf} is missing; run scripts/setup.sh (set-up extracts it)`);
  mkdirSync(join(scratch.dir, 'probe'), { recursive: true });
  systemImage = (await ensureSystemImage({ cacheDir: join(scratch.dir, 'system') })).path;
  modules = (await readBootManifest(bootDir))?.modules ?? [];
});

after(async () => {
  for (const vm of launched) await provider.kill(vm.id, vm.paths, vm.pid).catch(() => undefined);
  await scratch.cleanup();
});

async function boot(name: string, args: string[], agent: boolean): Promise<{ id: string; paths: VmPaths }> {
  const id = `${name}${randomBytes(4).toString('hex')}`;
  const paths = { stateDir: join(scratch.dir, id), runDir: join(scratch.dir, id, 'run'), consoleLog: join(scratch.dir, id, 'console.log') };
  mkdirSync(paths.runDir, { recursive: true });
  const req: LaunchRequest = {
    vmId: id,
    spec: { name, description: '', cores: 1, memoryMib: 320, kernelArgs: '', driveReadOnly: true, provider: 'qemu', hypervisor: { qemu: { accel: 'auto' } } },
    paths,
    // The ELF kernel, not the bzImage QEMU would be given by default.
    boot: { kernel: assets.kernelElf, initrd: assets.initrd, args: ['hc.root=vda', 'hc.rootflags=ro', `hc.mods=${[...modules, 'vsock_loopback'].join(',')}`, ...args] },
    rootDisk: { path: systemImage, readOnly: true },
    disks: [],
    agent,
  };
  const { pid } = await provider.launch(req);
  launched.push({ id, paths, pid });
  return { id, paths };
}

/** A byte pipe through a guest process's stdin and stdout, as a TTRPC transport after the HCSYNC handshake. */
async function tunnel(session: TtrpcAgentSession, args: string[]): Promise<Transport | undefined> {
  const { processId } = await session.createProcess({ args }, false);
  const io = session.io(processId);
  const events = io[Symbol.asyncIterator]();
  const nonce = randomBytes(8).toString('hex');
  const scanner = new SyncReplyScanner(nonce);
  await io.write(syncRequest(nonce));
  let rest: Buffer | undefined;
  while (rest === undefined) {
    const next: IteratorResult<ProcessEvent> = await events.next();
    if (next.done || next.value.kind === 'exit') return undefined;
    if (next.value.fd === 1) rest = scanner.push(Buffer.from(next.value.data));
  }
  const first = rest;
  return {
    readable: (async function* () {
      if (first.length > 0) yield first;
      for (;;) {
        const next = await events.next();
        if (next.done || next.value.kind === 'exit') return;
        if (next.value.fd === 1) yield next.value.data;
      }
    })(),
    write: (chunk) => io.write(chunk),
    close: () => {
      void io.closeStdin().catch(() => undefined);
      io.close();
    },
  };
}

test('the extracted vmlinux boots in QEMU, and the agent in vsock mode answers over a real AF_VSOCK connection', async (t) => {
  assert.equal(kernelImageKind(readFileSync(assets.kernelElf).subarray(0, 4)), 'elf');
  const started = Date.now();
  const vm = await boot('gvsock', ['hc.poweroff=reboot'], true);
  const endpoint = provider.agentEndpoint(vm.id, vm.paths);
  const session = await new TtrpcAgentConnector().connect(endpoint, { timeoutMs: 240_000 });
  const serialHello = await session.hello();
  t.diagnostic(`ELF vmlinux + system image: agent answered over virtio-serial ${Date.now() - started} ms after launch`);
  assert.match(readFileSync(vm.paths.consoleLog, 'utf8'), /Linux version/);

  // A second agent, as `hc.agent=vsock:1025` would start it: unix socket plus socat relay.
  const second = await session.createProcess({ args: ['/usr/bin/node', '/agent/agent.js', '--vsock', '1025'] }, false);
  assert.ok(second.pid > 0);
  // The guest connects to its own vsock port 1025 (CID 1, vsock_loopback) and the host talks through it.
  const transport = await waitFor('the vsock agent to answer', 60_000, async () => (await tunnel(session, ['/usr/bin/socat', 'STDIO', 'VSOCK-CONNECT:1:1025'])) ?? sleep(500).then(() => undefined));
  const overVsock = new TtrpcAgentSession(new TtrpcClient(transport));
  const vsockHello = await overVsock.hello();
  assert.equal(vsockHello.bootId, serialHello.bootId, 'the same guest answered over vsock');
  assert.notEqual(vsockHello.uptimeMs, undefined);
  // A process through the vsock agent.
  const echo = await overVsock.createProcess({ args: ['/bin/sh', '-c', 'echo via-vsock'] }, false);
  assert.deepEqual(await overVsock.wait(echo.processId), { exitCode: 0 });
  overVsock.close();

  // Power off with hc.poweroff=reboot: the guest reboots (QEMU's -no-reboot turns that into an exit).
  await session.shutdown().catch(() => undefined);
  session.close();
  await waitFor('the guest to reboot and QEMU to exit', 60_000, async () => ((await provider.status(vm.id, vm.paths, undefined)).status === 'gone' ? true : undefined));
  const consoleText = readFileSync(vm.paths.consoleLog, 'utf8');
  assert.match(consoleText, /reboot: Restarting system/);
  assert.doesNotMatch(consoleText, /reboot: Power down/);
});

test('hc.agent=vsock:1024 puts the system image\'s init and agent in vsock mode', async () => {
  const vm = await boot('ginit', ['hc.agent=vsock:1024'], false);
  const relayLine = /vsock relay: port 1024 -> \/run\/hc\/agent\.sock \(socat pid \d+\)/;
  await waitFor('the agent to listen on vsock', 240_000, () => {
    const text = readFileSync(vm.paths.consoleLog, 'utf8');
    return /listening on vsock port 1024/.test(text) && relayLine.test(text) ? true : undefined;
  });
  // The relay stays up (a socat that cannot bind or run would exit and be restarted).
  await sleep(3000);
  const consoleText = readFileSync(vm.paths.consoleLog, 'utf8');
  assert.match(consoleText, /\[hypercore-agent\] ready/);
  assert.doesNotMatch(consoleText, /waiting for virtio-serial port/);
  assert.doesNotMatch(consoleText, /vsock relay exited/);
});
