/**
 * containerd runs tasks as Hypercore microVMs, driven by `ctr` as a user would: a private
 * containerd 1.6 (its own root, state and sockets) with the runtime io.containerd.hypercore.v2,
 * pulling from a local docker-registry, and a hypercored of the test's own. Without CRI, each
 * task is its own pod VM. Real QEMU guests under TCG: the VMs are shared between steps.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Vm } from '../../src/core/vm.js';
import { startRegistry, type RegistryProcess } from '../../src/images/registry/testing/registry-process.js';
import { pushBusyboxImage } from './busybox-image.js';
import { PrivateContainerd } from './containerd/private-containerd.js';
import { TestDaemon, waitFor } from './harness.js';

const RUNTIME = 'io.containerd.hypercore.v2';
const daemon = new TestDaemon('hc-e2e-ctr-');
let registry: RegistryProcess;
let containerd: PrivateContainerd;
let image: string;
let fifoDir: string;
/** `ctr events` while the shared task `long` lives. */
let events: ReturnType<PrivateContainerd['ctrBackground']> | undefined;

before(async () => {
  registry = await startRegistry();
  image = await pushBusyboxImage(registry, 'NAME="Hypercore containerd test"\nID=hcctr\n');
  process.env['HYPERCORE_AGENT_TIMEOUT'] = '120';
  await daemon.start();
  containerd = new PrivateContainerd({ dir: join(daemon.dir, 'containerd'), hypercoreSocket: daemon.socket });
  await containerd.start();
  fifoDir = join(containerd.dir, 'fifo');
  mkdirSync(fifoDir, { recursive: true });
  const pulled = containerd.ctr(['-n', 'hc', 'images', 'pull', '--plain-http', image]);
  assert.equal(pulled.code, 0, pulled.stderr);
});

after(async () => {
  events?.proc.kill();
  // Whatever a failed test left: tasks killed and deleted through containerd, then containerd itself.
  for (const line of containerd?.ctr(['-n', 'hc', 'task', 'ls', '-q']).stdout.split('\n').filter(Boolean) ?? []) {
    containerd.ctr(['-n', 'hc', 'task', 'kill', '-s', '9', line]);
    containerd.ctr(['-n', 'hc', 'task', 'delete', '-f', line]);
  }
  await containerd?.stop();
  containerd?.unmountLeftovers();
  await daemon.cleanup();
  await registry?.stop();
});

function vms(): Vm[] {
  return JSON.parse(daemon.cli(['ls', '--json']).stdout) as Vm[];
}

/** The topics of `ctr events` lines about `id`, in order. */
function topicsOf(events: string, id: string): string[] {
  return events
    .split('\n')
    .filter((l) => l.includes(`"container_id":"${id}"`))
    .map((l) => /\s(\/tasks\/[a-z-]+)\s/.exec(l)?.[1] ?? '?');
}

function run(args: string[]) {
  return containerd.ctr(['-n', 'hc', 'run', '--fifo-dir', fifoDir, '--runtime', RUNTIME, ...args]);
}

test('ctr run --rm: the task runs in its own VM, prints the file and exits with its code; events in order; nothing left', async () => {
  const events = containerd.ctrBackground(['-n', 'hc', 'events']);
  try {
    const r = run(['--rm', image, 'first', 'sh', '-c', 'cat /etc/os-release; exit 3']);
    assert.equal(r.code, 3, `${r.stderr}\n${daemon.log().slice(-3000)}`);
    assert.match(r.stdout, /NAME="Hypercore containerd test"/);
    await waitFor('the delete event', 10_000, () => (topicsOf(events.output(), 'first').includes('/tasks/delete') ? true : undefined));
    assert.deepEqual(topicsOf(events.output(), 'first'), ['/tasks/create', '/tasks/start', '/tasks/exit', '/tasks/delete']);
    assert.match(events.output(), /"container_id":"first","id":"first","pid":\d+,"exit_status":3/);
  } finally {
    events.proc.kill();
  }
  assert.deepEqual(vms(), [], 'the VM is gone with the task');
  await waitFor('the shim socket to close', 10_000, () => (readdirSync(join(daemon.runDir, 'shim')).length === 0 ? true : undefined));
  assert.deepEqual(readdirSync(join(daemon.root, 'vms')), []);
  assert.deepEqual(containerd.ctr(['-n', 'hc', 'container', 'ls', '-q']).stdout.trim(), '');
});

// The VM of the task `long` is shared by the tests below (a VM boot under TCG takes half a minute):
// their containers join it through the CRI annotations, as a pod's containers do.
const JOIN_LONG = ['--annotation', 'io.kubernetes.cri.container-type=container', '--annotation', 'io.kubernetes.cri.sandbox-id=long'];

test('a running task: hypercore ls shows its pod VM; exec, ps, metrics, pause and resume through ctr', async () => {
  const ev = containerd.ctrBackground(['-n', 'hc', 'events']);
  events = ev;
  {
    const started = run(['-d', image, 'long', 'sh', '-c', 'echo started; exec sleep 100000']);
    assert.equal(started.code, 0, `${started.stderr}\n${daemon.log().slice(-3000)}`);
    const pod = vms().find((vm) => vm.spec.pod?.sandboxId === 'long');
    assert.ok(pod, 'a pod VM serves the task');
    assert.equal(pod.state, 'running');
    const ls = daemon.cli(['ls']);
    assert.match(ls.stdout, /SANDBOX/);
    assert.match(ls.stdout, /hc\/long/);
    const inVm = daemon.cli(['exec', pod.id, '--', 'sh', '-c', 'ls /run/hc/containers']);
    assert.equal(inVm.code, 0, inVm.stderr);
    assert.match(inVm.stdout, /long/, 'hypercore exec runs in the pod VM');

    const exec = containerd.ctr(['-n', 'hc', 'task', 'exec', '--fifo-dir', fifoDir, '--exec-id', 'ex1', 'long', 'sh', '-c', 'echo in-exec; echo to-stderr >&2; exit 4']);
    assert.equal(exec.code, 4, exec.stderr);
    assert.equal(exec.stdout, 'in-exec\n');
    assert.equal(exec.stderr, 'to-stderr\n');
    await waitFor('the exec exit event', 10_000, () => (/"id":"ex1"/.test(ev.output()) ? true : undefined));
    const execTopics = ev.output().split('\n').filter((l) => l.includes('"exec_id":"ex1"') || l.includes('"id":"ex1"')).map((l) => /\s(\/tasks\/[a-z-]+)\s/.exec(l)?.[1]);
    assert.deepEqual(execTopics, ['/tasks/exec-added', '/tasks/exec-started', '/tasks/exit']);

    const bg = containerd.ctr(['-n', 'hc', 'task', 'exec', '--fifo-dir', fifoDir, '-d', '--exec-id', 'bg', 'long', 'sleep', '1000']);
    assert.equal(bg.code, 0, bg.stderr);
    const ps = containerd.ctr(['-n', 'hc', 'task', 'ps', 'long']);
    assert.equal(ps.code, 0, ps.stderr);
    assert.equal(ps.stdout.trim().split('\n').length, 3, `the init and the exec: ${ps.stdout}`);
    assert.match(ps.stdout, /bg/, 'the exec is named');

    const metrics = containerd.ctr(['-n', 'hc', 'task', 'metrics', '--format', 'json', 'long']);
    assert.equal(metrics.code, 0, metrics.stderr);
    const m = JSON.parse(metrics.stdout) as { pids?: { current?: number }; memory?: { usage?: number }; cpu?: { usage_usec?: number } };
    assert.ok((m.pids?.current ?? 0) >= 2, metrics.stdout);
    assert.ok((m.memory?.usage ?? 0) > 0, metrics.stdout);
    assert.ok((m.cpu?.usage_usec ?? 0) > 0, metrics.stdout);

    assert.equal(containerd.ctr(['-n', 'hc', 'task', 'pause', 'long']).code, 0);
    assert.match(containerd.ctr(['-n', 'hc', 'task', 'ls']).stdout, /long\s+\d+\s+PAUSED/);
    assert.equal(containerd.ctr(['-n', 'hc', 'task', 'resume', 'long']).code, 0);
    assert.match(containerd.ctr(['-n', 'hc', 'task', 'ls']).stdout, /long\s+\d+\s+RUNNING/);
  }
});

test('ctr run -t: the process has a terminal', () => {
  const r = containerd.ctrInTerminal(['-n', 'hc', 'run', '--fifo-dir', fifoDir, '--runtime', RUNTIME, ...JOIN_LONG, '-t', '--rm', image, 'tty1', 'sh', '-c', 'tty; [ -t 0 ] && [ -t 1 ] && echo both-ttys; stty size; exit 5']);
  assert.equal(r.code, 5, r.stdout);
  assert.match(r.stdout, /\/dev\/pts\/\d+/);
  assert.match(r.stdout, /both-ttys/);
  assert.match(r.stdout, /^\d+ \d+\r?$/m);
});

test('a command the image does not have: a clear error, and the pod VM runs on without it', () => {
  const r = run([...JOIN_LONG, '--rm', image, 'nocmd', 'no-such-command']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /exec: "no-such-command": executable file not found in \$PATH/);
  const pods = vms();
  assert.equal(pods.length, 1, 'no VM of its own');
  const inVm = daemon.cli(['exec', pods[0]!.id, '--', 'ls', '/run/hc/containers']);
  assert.doesNotMatch(inVm.stdout, /nocmd/, 'nothing of it left in the VM');
  containerd.ctr(['-n', 'hc', 'container', 'rm', 'nocmd']);
});

test('kill: the task exits 137, and deleting it removes its pod VM', async () => {
  const output = events!;
  try {
    const killed = containerd.ctr(['-n', 'hc', 'task', 'kill', '-s', '9', 'long']);
    assert.equal(killed.code, 0, killed.stderr);
    await waitFor('the task to stop', 20_000, () => (/long\s+\d+\s+STOPPED/.test(containerd.ctr(['-n', 'hc', 'task', 'ls']).stdout) ? true : undefined));
    assert.match(output.output(), /"container_id":"long","id":"long","pid":\d+,"exit_status":137/);
    assert.equal(containerd.ctr(['-n', 'hc', 'task', 'delete', 'long']).code, 0);
    assert.equal(containerd.ctr(['-n', 'hc', 'container', 'rm', 'long']).code, 0);
    await waitFor('the pod VM to go', 20_000, () => (vms().length === 0 ? true : undefined));
  } finally {
    output.proc.kill();
  }
});

test('a bundle whose OCI spec binds a host directory is refused with the reason, and nothing is left', () => {
  const dir = join(daemon.dir, 'hostdir');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'secret'), 'host data\n');
  const r = run(['--rm', '--mount', `type=bind,src=${dir},dst=/mnt,options=rbind:ro`, image, 'binddir', 'cat', '/mnt/secret']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, new RegExp(`bind mount of host directory ${dir} at /mnt is not supported`));
  assert.ok(!/host data/.test(r.stdout));
  assert.deepEqual(vms(), []);
  assert.ok(!existsSync(join(daemon.runDir, 'shim')) || readdirSync(join(daemon.runDir, 'shim')).length === 0);
  containerd.ctr(['-n', 'hc', 'container', 'rm', 'binddir']);
});
