/**
 * containerd runs pods and tasks as Hypercore microVMs: one private containerd 1.6 (its own root,
 * state and sockets, in a network namespace the test makes and treats as the node), a local
 * docker-registry and a hypercored of the test's own, shared by all steps (a VM boot under TCG
 * takes half a minute, so the steps share VMs).
 *
 * Kubernetes' path: the CRI plugin runs a pod with RuntimeClass handler `hypercore`, driven by a
 * gRPC client of runtime.v1 making kubelet's calls. One VM per pod, both containers in it, the
 * pod's network from CNI (bridge + host-local) mirrored into the VM, CRI's logs, then Stop and
 * Remove leave nothing. `ctr`'s path: tasks that join the pod's VM by the CRI annotations
 * (exec, ps, metrics, pause, resume, a terminal, kill), and a task of its own (its own VM).
 * Faults: an image that cannot run; hypercored killed (-9) under a running pod (the pod runs on and
 * the restarted hypercored serves it again); the shim keeper killed (-9) under the running pod
 * (containerd takes the shim for dead, and stops and removes the pod; nothing is left); a second
 * pod's QEMU killed while hypercored is down (its containers are reported exited; nothing is left).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Vm } from '../../src/core/vm.js';
import type { TestNetns } from '../../src/network/test-netns.js';
import { CriClient } from './containerd/cri-client.js';
import { containerConfig as criContainerConfig, CriNode, CRI_NAMESPACE, CTR_NAMESPACE, HYPERCORE_RUNTIME as RUNTIME, sandboxConfig as criSandboxConfig } from './containerd/cri-node.js';
import { PrivateContainerd } from './containerd/private-containerd.js';
import { processesMentioning, TestDaemon, waitFor } from './harness.js';

const daemon = new TestDaemon('hc-e2e-containerd-');
const SUBNET = '10.231.7';
const criNode = new CriNode(daemon, { netnsPrefix: 'hc-e2e-node', subnet: SUBNET });
let node: TestNetns;
let containerd: PrivateContainerd;
let cri: CriClient;
let busybox: string;
let broken: string;
let fifoDir: string;
/** `ctr events` while the ctr task `long` lives. */
let events: ReturnType<PrivateContainerd['ctrBackground']> | undefined;

before(async () => {
  process.env['HYPERCORE_AGENT_TIMEOUT'] = '120';
  await criNode.start();
  ({ netns: node, containerd, cri } = criNode);
  busybox = await criNode.addImage('NAME="Hypercore CRI test"\nID=hccri\n', [CRI_NAMESPACE, CTR_NAMESPACE]);
  broken = await criNode.addImage('NAME=broken\n', [CRI_NAMESPACE], { name: 'hc/broken:1', cmd: ['/usr/local/bin/not-in-this-image'] });
  fifoDir = join(containerd.dir, 'fifo');
  mkdirSync(fifoDir, { recursive: true });
});

after(async () => {
  events?.proc.kill();
  await criNode.stop();
});

function vms(): Vm[] {
  return JSON.parse(daemon.cli(['ls', '--json']).stdout) as Vm[];
}

function inNode(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync('nsenter', [`--net=/var/run/netns/${node.name}`, '--', ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function sandboxConfig(name: string): object {
  return criSandboxConfig(name, criNode.logDirectory(name));
}

function containerConfig(name: string, command: string[], image = busybox): object {
  return criContainerConfig(name, command, image);
}

/** The topics of `ctr events` lines about `id`, in order. */
function topicsOf(output: string, id: string): string[] {
  return output
    .split('\n')
    .filter((l) => l.includes(`"container_id":"${id}"`))
    .map((l) => /\s(\/tasks\/[a-z-]+)\s/.exec(l)?.[1] ?? '?');
}

/** `ctr run` in namespace `ns` with the Hypercore runtime. */
function ctrRun(ns: string, args: string[]) {
  return containerd.ctr(['-n', ns, 'run', '--fifo-dir', fifoDir, '--runtime', RUNTIME, ...args]);
}

/** ctr's containers join the CRI pod's VM by the annotations CRI sets on a pod's containers. */
function joinPod(): string[] {
  return ['--annotation', 'io.kubernetes.cri.container-type=container', '--annotation', `io.kubernetes.cri.sandbox-id=${podId}`];
}

/** The pod sockets containerd connects to (the keeper's control socket, logs and hypercored's own sockets aside). */
function podSockets(): string[] {
  return readdirSync(join(daemon.runDir, 'shim')).filter((n) => n.endsWith('.sock') && n !== 'keeper.sock');
}

/** The shim keeper's pid (the one process that holds containerd's connections). */
function keeperPids(): number[] {
  return processesMentioning(join(daemon.runDir, 'shim', 'keeper.sock'));
}

function podVm(): Vm {
  return vms().find((vm) => vm.spec.pod?.sandboxId === podId)!;
}

/** Files below `dir` that are FIFOs. */
function fifosUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.isFIFO()) out.push(p);
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

let podId: string;
let c1: string;
let c2: string;
let podIp: string;
/** The pod VM (recorded before hypercored is killed; it is gone after). */
let podVmId: string;

test('RunPodSandbox with runtime handler hypercore, then two containers: one VM, ExecSync in each, status, CRI logs, the pod IP answers', async () => {
  const version = await cri.version();
  assert.equal(version.runtimeName, 'containerd');
  const sandbox = sandboxConfig('pod1');
  podId = await cri.runPodSandbox(sandbox, 'hypercore');
  const status = await cri.podSandboxStatus(podId);
  assert.equal(status.state, 'SANDBOX_READY');
  assert.equal(status.runtimeHandler, 'hypercore');
  podIp = status.network?.ip ?? '';
  assert.match(podIp, new RegExp(`^${SUBNET.replaceAll('.', '\\.')}\\.\\d+$`));

  c1 = await cri.createContainer(podId, containerConfig('web', ['sh', '-c', 'echo hello-from-web; echo oops-from-web >&2; mkdir -p /www; echo served-by-pod > /www/index.html; exec httpd -f -p 8080 -h /www']), sandbox);
  // `side` logs what is left in /tmp/say (the fault tests check that its log still flows).
  c2 = await cri.createContainer(podId, containerConfig('side', ['sh', '-c', 'echo hello-from-side; while sleep 1; do if [ -f /tmp/say ]; then cat /tmp/say; rm /tmp/say; fi; done']), sandbox);
  await cri.startContainer(c1);
  const vmBefore = vms().find((vm) => vm.spec.pod)!;
  const bootId = () => daemon.cli(['exec', vmBefore.id, '--', 'cat', '/proc/sys/kernel/random/boot_id']).stdout.trim();
  const bootBefore = bootId();
  await cri.startContainer(c2);
  // The second container joined the running VM: same VMM, same guest boot.
  assert.equal(vms().find((vm) => vm.spec.pod)!.pid, vmBefore.pid);
  assert.equal(bootId(), bootBefore);
  for (const id of [c1, c2]) assert.equal((await cri.containerStatus(id)).state, 'CONTAINER_RUNNING');

  const pods = vms().filter((vm) => vm.spec.pod);
  assert.equal(pods.length, 1, 'one VM for the pod');
  assert.equal(pods[0]!.spec.pod!.sandboxId, podId);
  assert.equal(pods[0]!.spec.pod!.namespace, 'k8s.io');
  const inVm = daemon.cli(['exec', pods[0]!.id, '--', 'ls', '/run/hc/containers']);
  assert.equal(inVm.code, 0, inVm.stderr);
  assert.deepEqual(inVm.stdout.split('\n').filter(Boolean).sort(), [c1, c2, podId].sort(), 'sandbox and both containers share the VM');

  const e1 = await cri.execSync(c1, ['cat', '/etc/os-release']);
  assert.equal(e1.exitCode, 0, e1.stderr);
  assert.match(e1.stdout, /NAME="Hypercore CRI test"/);
  const e2 = await cri.execSync(c2, ['sh', '-c', 'echo "$HC_TEST on $(hostname)"; echo to-err >&2; exit 3']);
  assert.equal(e2.exitCode, 3);
  assert.equal(e2.stdout, 'side on pod1\n');
  assert.equal(e2.stderr, 'to-err\n');

  // CRI's log format: RFC 3339 time, stream, tag (F = full line), the line.
  const log = join(daemon.dir, 'logs', 'pod1', 'web.log');
  await waitFor('the web log', 20_000, () => (existsSync(log) && readFileSync(log, 'utf8').includes('oops-from-web') ? true : undefined));
  const lines = readFileSync(log, 'utf8').trim().split('\n');
  assert.ok(lines.some((l) => /^\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-][\d:]+) stdout F hello-from-web$/.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => /^\S+ stderr F oops-from-web$/.test(l)), lines.join('\n'));
  assert.equal((await cri.containerStatus(c1)).logPath, log);

  // The pod IP, from the node.
  await waitFor('the pod to answer on its IP', 60_000, () => {
    const r = inNode(['curl', '-s', '--max-time', '5', `http://${podIp}:8080/`]);
    return r.stdout.includes('served-by-pod') ? true : undefined;
  });
  assert.equal(inNode(['busybox', 'ping', '-c', '1', '-W', '5', podIp]).code, 0);
  const addr = await cri.execSync(c2, ['ip', '-4', 'addr', 'show', 'eth0']);
  assert.match(addr.stdout, new RegExp(`inet ${podIp.replaceAll('.', '\\.')}/24`), 'the guest has the pod IP');
});

test('a container whose image cannot run gets a clear error in ContainerStatus; its pod stays usable', async () => {
  const sandbox = sandboxConfig('pod1');
  const bad = await cri.createContainer(podId, containerConfig('bad', [], broken), sandbox);
  await assert.rejects(cri.startContainer(bad), /not-in-this-image/);
  const status = await cri.containerStatus(bad);
  assert.equal(status.state, 'CONTAINER_EXITED');
  assert.equal(status.reason, 'StartError');
  assert.match(status.message, /exec: "\/usr\/local\/bin\/not-in-this-image": stat \/usr\/local\/bin\/not-in-this-image: no such file or directory/);
  await cri.removeContainer(bad);
  const e = await cri.execSync(c2, ['echo', 'pod-still-fine']);
  assert.equal(e.stdout, 'pod-still-fine\n');
});

test('ctr: a task that joins the pod VM; hypercore ls shows the pod VM, exec, ps, metrics, pause and resume through ctr', async () => {
  const ev = containerd.ctrBackground(['-n', 'k8s.io', 'events']);
  events = ev;
  const started = ctrRun('k8s.io', [...joinPod(), '-d', busybox, 'long', 'sh', '-c', 'echo started; exec sleep 100000']);
  assert.equal(started.code, 0, `${started.stderr}\n${daemon.log().slice(-3000)}`);
  const pod = podVm();
  assert.equal(vms().length, 1, 'the task joined the pod VM');
  const ls = daemon.cli(['ls']);
  assert.match(ls.stdout, /SANDBOX/);
  assert.match(ls.stdout, new RegExp(`k8s\\.io/${podId.slice(0, 12)}`));
  const inVm = daemon.cli(['exec', pod.id, '--', 'sh', '-c', 'ls /run/hc/containers']);
  assert.equal(inVm.code, 0, inVm.stderr);
  assert.match(inVm.stdout, /long/, 'hypercore exec runs in the pod VM');

  const exec = containerd.ctr(['-n', 'k8s.io', 'task', 'exec', '--fifo-dir', fifoDir, '--exec-id', 'ex1', 'long', 'sh', '-c', 'echo in-exec; echo to-stderr >&2; exit 4']);
  assert.equal(exec.code, 4, exec.stderr);
  assert.equal(exec.stdout, 'in-exec\n');
  assert.equal(exec.stderr, 'to-stderr\n');
  await waitFor('the exec exit event', 10_000, () => (/"id":"ex1"/.test(ev.output()) ? true : undefined));
  const execTopics = ev.output().split('\n').filter((l) => l.includes('"exec_id":"ex1"') || l.includes('"id":"ex1"')).map((l) => /\s(\/tasks\/[a-z-]+)\s/.exec(l)?.[1]);
  assert.deepEqual(execTopics, ['/tasks/exec-added', '/tasks/exec-started', '/tasks/exit']);

  const bg = containerd.ctr(['-n', 'k8s.io', 'task', 'exec', '--fifo-dir', fifoDir, '-d', '--exec-id', 'bg', 'long', 'sleep', '1000']);
  assert.equal(bg.code, 0, bg.stderr);
  const ps = containerd.ctr(['-n', 'k8s.io', 'task', 'ps', 'long']);
  assert.equal(ps.code, 0, ps.stderr);
  assert.equal(ps.stdout.trim().split('\n').length, 3, `the init and the exec: ${ps.stdout}`);
  assert.match(ps.stdout, /bg/, 'the exec is named');

  const metrics = containerd.ctr(['-n', 'k8s.io', 'task', 'metrics', '--format', 'json', 'long']);
  assert.equal(metrics.code, 0, metrics.stderr);
  const m = JSON.parse(metrics.stdout) as { pids?: { current?: number }; memory?: { usage?: number }; cpu?: { usage_usec?: number } };
  assert.ok((m.pids?.current ?? 0) >= 2, metrics.stdout);
  assert.ok((m.memory?.usage ?? 0) > 0, metrics.stdout);
  assert.ok((m.cpu?.usage_usec ?? 0) > 0, metrics.stdout);

  assert.equal(containerd.ctr(['-n', 'k8s.io', 'task', 'pause', 'long']).code, 0);
  assert.match(containerd.ctr(['-n', 'k8s.io', 'task', 'ls']).stdout, /long\s+\d+\s+PAUSED/);
  assert.equal(containerd.ctr(['-n', 'k8s.io', 'task', 'resume', 'long']).code, 0);
  assert.match(containerd.ctr(['-n', 'k8s.io', 'task', 'ls']).stdout, /long\s+\d+\s+RUNNING/);
});

test('ctr run -t: the process has a terminal, and leads a session in the container with it as the controlling terminal', async () => {
  const r = await containerd.ctrInTerminal(['-n', 'k8s.io', 'run', '--fifo-dir', fifoDir, '--runtime', RUNTIME, ...joinPod(), '-t', '--rm', busybox, 'tty1', 'sh', '-c', 'tty; [ -t 0 ] && [ -t 1 ] && echo both-ttys; stty size; read -r s < /proc/$$/stat; echo "stat=$s"; exit 5']);
  assert.equal(r.code, 5, r.stdout);
  assert.match(r.stdout, /\/dev\/pts\/\d+/);
  assert.match(r.stdout, /both-ttys/);
  assert.match(r.stdout, /^\d+ \d+\r?$/m);
  // pid (comm) state ppid pgrp session tty_nr tpgid: the shell's group, session and foreground group are its own.
  const stat = /^stat=(\d+) \([^)]*\) \S+ \d+ (\d+) (\d+) (\d+) (-?\d+)/m.exec(r.stdout);
  assert.ok(stat, r.stdout);
  const [pid, pgrp, session, ttyNr, tpgid] = stat.slice(1).map(Number);
  assert.deepEqual([pgrp, session, tpgid], [pid, pid, pid], r.stdout);
  assert.notEqual(ttyNr, 0, r.stdout);
});

test('a command the image does not have: a clear error, and the pod VM runs on without it', () => {
  const r = ctrRun('k8s.io', [...joinPod(), '--rm', busybox, 'nocmd', 'no-such-command']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /exec: "no-such-command": executable file not found in \$PATH/);
  assert.equal(vms().length, 1, 'no VM of its own');
  const inVm = daemon.cli(['exec', podVm().id, '--', 'ls', '/run/hc/containers']);
  assert.doesNotMatch(inVm.stdout, /nocmd/, 'nothing of it left in the VM');
  containerd.ctr(['-n', 'k8s.io', 'container', 'rm', 'nocmd']);
});

test('ctr kill: the task exits 137; deleting it leaves the pod VM and its other containers running', async () => {
  const output = events!;
  try {
    const killed = containerd.ctr(['-n', 'k8s.io', 'task', 'kill', '-s', '9', 'long']);
    assert.equal(killed.code, 0, killed.stderr);
    await waitFor('the task to stop', 20_000, () => (/long\s+\d+\s+STOPPED/.test(containerd.ctr(['-n', 'k8s.io', 'task', 'ls']).stdout) ? true : undefined));
    // The exit event reaches `ctr events` through containerd after the task's state says stopped.
    await waitFor('the exit event', 10_000, () => (/"container_id":"long","id":"long","pid":\d+,"exit_status":137/.test(output.output()) ? true : undefined));
    assert.equal(containerd.ctr(['-n', 'k8s.io', 'task', 'delete', 'long']).code, 0);
    assert.equal(containerd.ctr(['-n', 'k8s.io', 'container', 'rm', 'long']).code, 0);
    assert.equal(vms().length, 1);
    assert.equal((await cri.execSync(c2, ['echo', 'pod-still-fine'])).stdout, 'pod-still-fine\n');
  } finally {
    output.proc.kill();
  }
});

test('CRI UpdateContainerResources changes a running container\'s memory limit in the guest; a task past its limit is OOM-killed: /tasks/oom, then exit 137', async () => {
  // The limit as the guest's cgroup has it (memory.max, read by the agent for Stats).
  const memoryLimit = (id: string): number => {
    const m = containerd.ctr(['-n', 'k8s.io', 'task', 'metrics', '--format', 'json', id]);
    assert.equal(m.code, 0, m.stderr);
    return (JSON.parse(m.stdout) as { memory?: { usage_limit?: number } }).memory?.usage_limit ?? -1;
  };
  await cri.updateMemoryLimit(c2, 48 << 20);
  assert.equal(memoryLimit(c2), 48 << 20, 'Update reached the running container');
  await cri.updateMemoryLimit(c2, 96 << 20);
  assert.equal(memoryLimit(c2), 96 << 20);

  const ev = containerd.ctrBackground(['-n', 'k8s.io', 'events']);
  try {
    // A shell that doubles a string until the cgroup's 32 MiB are gone: the kernel's OOM killer ends it.
    const hog = ctrRun('k8s.io', [...joinPod(), '--rm', '--memory-limit', String(32 << 20), busybox, 'hog', 'sh', '-c', 'x=0123456789abcdef; while :; do x="$x$x"; done']);
    assert.equal(hog.code, 137, `${hog.stderr}\n${daemon.log().slice(-2000)}`);
    await waitFor('the exit event of the OOM-killed task', 10_000, () => (topicsOf(ev.output(), 'hog').includes('/tasks/exit') ? true : undefined));
    const topics = topicsOf(ev.output(), 'hog');
    assert.ok(topics.indexOf('/tasks/oom') >= 0 && topics.indexOf('/tasks/oom') < topics.indexOf('/tasks/exit'), `OOM reported before the exit: ${topics.join(' ')}`);
    assert.match(ev.output(), /"container_id":"hog","id":"hog","pid":\d+,"exit_status":137/);
  } finally {
    ev.proc.kill();
  }
  assert.equal(vms().length, 1, 'it ran in the pod VM');
  assert.equal((await cri.execSync(c2, ['echo', 'pod-still-fine'])).stdout, 'pod-still-fine\n');
});

test('ctr run --rm without CRI: the task runs in its own VM, prints the file and exits with its code; events in order; nothing left', async () => {
  const ownEvents = containerd.ctrBackground(['-n', 'hc', 'events']);
  try {
    const r = ctrRun('hc', ['--rm', busybox, 'first', 'sh', '-c', 'cat /etc/os-release; exit 3']);
    assert.equal(r.code, 3, `${r.stderr}\n${daemon.log().slice(-3000)}`);
    assert.match(r.stdout, /NAME="Hypercore CRI test"/);
    await waitFor('the delete event', 10_000, () => (topicsOf(ownEvents.output(), 'first').includes('/tasks/delete') ? true : undefined));
    assert.deepEqual(topicsOf(ownEvents.output(), 'first'), ['/tasks/create', '/tasks/start', '/tasks/exit', '/tasks/delete']);
    assert.match(ownEvents.output(), /"container_id":"first","id":"first","pid":\d+,"exit_status":3/);
  } finally {
    ownEvents.proc.kill();
  }
  assert.deepEqual(vms().map((vm) => vm.spec.pod?.sandboxId), [podId], 'its VM is gone with the task');
  await waitFor('its shim socket to close', 10_000, () => (podSockets().length === 1 ? true : undefined));
  assert.deepEqual(readdirSync(join(daemon.root, 'vms')), [podVm().id]);
  assert.deepEqual(containerd.ctr(['-n', 'hc', 'container', 'ls', '-q']).stdout.trim(), '');
});

test('a bundle whose OCI spec binds a host directory is refused with the reason, and nothing is left', () => {
  const dir = join(daemon.dir, 'hostdir');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'secret'), 'host data\n');
  const r = ctrRun('hc', ['--rm', '--mount', `type=bind,src=${dir},dst=/mnt,options=rbind:ro`, busybox, 'binddir', 'cat', '/mnt/secret']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, new RegExp(`bind mount of host directory ${dir} at /mnt is not supported`));
  assert.ok(!/host data/.test(r.stdout));
  assert.equal(vms().length, 1, 'the pod VM only');
  assert.equal(podSockets().length, 1, "the pod VM's socket only");
  containerd.ctr(['-n', 'hc', 'container', 'rm', 'binddir']);
});

// The shim keeper holds containerd's connections to the pod's socket and relays them to hypercored:
// when hypercored dies, containerd's connections stay open (it would take a closed one for a dead
// shim, report the tasks exited and run the shim's `delete`), and the restarted hypercored serves
// them again. The pod's VM and containers run on through it all.
test('kill -9 of hypercored under a running pod: the pod runs on (same QEMU, same guest boot, logs still flow), and the restarted hypercored serves it; a plain restart too', async () => {
  const vm = podVm();
  podVmId = vm.id;
  const bootId = () => daemon.cli(['exec', vm.id, '--', 'cat', '/proc/sys/kernel/random/boot_id']).stdout.trim();
  const bootBefore = bootId();
  assert.match(bootBefore, /^[0-9a-f-]{36}$/);
  const keeper = keeperPids();
  assert.equal(keeper.length, 1, 'one shim keeper');
  await daemon.kill9();
  // containerd runs a dead shim's clean-up as soon as the connection closes, and gives each
  // `delete` 5 s: after longer than that with hypercored down, none may have been asked for.
  await new Promise((r) => setTimeout(r, 8000));
  assert.deepEqual(processesMentioning(vm.id).length > 0, true, 'the VM runs on without hypercored');
  const pending = `${daemon.socket}.shim-deletes`;
  assert.deepEqual(existsSync(pending) ? readdirSync(pending) : [], [], 'containerd ran no shim delete: it never saw the shim die');
  for (const id of [c1, c2]) assert.equal((await cri.containerStatus(id)).state, 'CONTAINER_RUNNING');
  // A call made while hypercored is away waits for it.
  const waitedExec = cri.execSync(c2, ['echo', 'made-while-hypercored-was-away']);
  await daemon.start();
  assert.equal((await waitedExec).stdout, 'made-while-hypercored-was-away\n');
  assert.deepEqual(keeperPids(), keeper, 'the same keeper');
  const after = podVm();
  assert.equal(after.id, vm.id);
  assert.equal(after.pid, vm.pid, 'the same QEMU process');
  assert.equal(bootId(), bootBefore, 'the same guest boot');
  const e = await cri.execSync(c2, ['sh', '-c', 'echo exec-after-restart; exit 6']);
  assert.equal(e.exitCode, 6);
  assert.equal(e.stdout, 'exec-after-restart\n');
  for (const id of [c1, c2]) assert.equal((await cri.containerStatus(id)).state, 'CONTAINER_RUNNING');
  // The container's output still reaches CRI's log: the keeper held the log FIFO while hypercored was away.
  const said = await cri.execSync(c2, ['sh', '-c', 'echo log-after-restart > /tmp/say.new && mv /tmp/say.new /tmp/say']);
  assert.equal(said.exitCode, 0, said.stderr);
  const log = join(daemon.dir, 'logs', 'pod1', 'side.log');
  await waitFor('the line in the web log', 20_000, () => (readFileSync(log, 'utf8').includes('stdout F log-after-restart') ? true : undefined));
  await waitFor('the pod to answer on its IP again', 30_000, () => (inNode(['curl', '-s', '--max-time', '5', `http://${podIp}:8080/`]).stdout.includes('served-by-pod') ? true : undefined));

  // A plain restart (SIGTERM) too: the processes whose agent streams close as hypercored stops run on.
  await daemon.stop();
  await daemon.start();
  for (const id of [c1, c2]) assert.equal((await cri.containerStatus(id)).state, 'CONTAINER_RUNNING');
  assert.equal((await cri.execSync(c2, ['echo', 'after-a-plain-restart'])).stdout, 'after-a-plain-restart\n');
  assert.equal(podVm().pid, vm.pid);
});

// The keeper is "the shim" containerd talks to. containerd 1.6 takes a closed shim connection for a
// dead shim: it runs the shim's `delete` for each task (hypercored removes the pod's VM, as runc's
// shim's delete kills the containers) and reports the tasks exited. hypercored starts a new keeper
// for the pods it serves next.
test('kill -9 of the shim keeper under a running pod: containerd sees the tasks exit, the pod VM is removed, a new keeper takes over', async () => {
  const [keeper] = keeperPids();
  process.kill(keeper!, 'SIGKILL');
  await waitFor('containerd to see the containers exit', 30_000, async () => ((await cri.containerStatus(c2)).state === 'CONTAINER_EXITED' && (await cri.containerStatus(c1)).state === 'CONTAINER_EXITED' ? true : undefined));
  await waitFor('the pod VM to go', 60_000, () => (vms().length === 0 ? true : undefined));
  await waitFor('its QEMU to go', 10_000, () => (processesMentioning(podVmId).length === 0 ? true : undefined));
  await waitFor('a new keeper', 10_000, () => (keeperPids().length === 1 && keeperPids()[0] !== keeper ? true : undefined));
});

test('StopPodSandbox and RemovePodSandbox leave no VM, TAP, mount, FIFO or process', async () => {
  await cri.stopPodSandbox(podId);
  for (const id of [c1, c2]) assert.equal((await cri.containerStatus(id)).state, 'CONTAINER_EXITED');
  await cri.removePodSandbox(podId);
  await assertNothingLeft(podVmId);
});

// The pod's VM dies while hypercored is down: the restarted hypercored finds it stopped and reports
// its tasks exited (255, as containerd does for a task whose shim vanished), so CRI sees the
// containers exit and can remove the pod.
test("kill -9 of hypercored, then of the pod's QEMU: the restarted hypercored reports the containers exited (255), and the pod is removed leaving nothing", async () => {
  const sandbox = sandboxConfig('pod2');
  const pod = await cri.runPodSandbox(sandbox, 'hypercore');
  const c = await cri.createContainer(pod, containerConfig('lost', ['sh', '-c', 'while sleep 1; do :; done']), sandbox);
  await cri.startContainer(c);
  assert.equal((await cri.containerStatus(c)).state, 'CONTAINER_RUNNING');
  const vm = vms().find((v) => v.spec.pod?.sandboxId === pod)!;
  await daemon.kill9();
  const qemu = processesMentioning(vm.id);
  assert.ok(qemu.length > 0, 'the VM runs on without hypercored');
  for (const pid of qemu) process.kill(pid, 'SIGKILL');
  await waitFor('its QEMU to go', 10_000, () => (processesMentioning(vm.id).length === 0 ? true : undefined));
  await daemon.start();
  await waitFor('containerd to see the container exit', 30_000, async () => ((await cri.containerStatus(c)).state === 'CONTAINER_EXITED' ? true : undefined));
  assert.equal((await cri.containerStatus(c)).exitCode, 255);
  await waitFor('the sandbox to be not ready', 30_000, async () => ((await cri.podSandboxStatus(pod)).state === 'SANDBOX_NOTREADY' ? true : undefined));
  await cri.stopPodSandbox(pod);
  await cri.removePodSandbox(pod);
  await assertNothingLeft(vm.id);
});

/** No pod VM, QEMU, socket, TAP, pod namespace, mount or FIFO is left. */
async function assertNothingLeft(vmId: string): Promise<void> {
  await waitFor('the pod VM to go', 30_000, () => (vms().length === 0 ? true : undefined));
  assert.deepEqual(processesMentioning(vmId), [], 'no QEMU');
  assert.deepEqual(readdirSync(join(daemon.root, 'vms')), []);
  await waitFor('the shim socket to close', 10_000, () => (podSockets().length === 0 ? true : undefined));
  const links = inNode(['ip', '-o', 'link']).stdout;
  assert.doesNotMatch(links, /hctap/, 'no TAP');
  assert.deepEqual(readdirSync(join(containerd.state, 'io.containerd.grpc.v1.cri', 'netns')).filter((n) => !lstatSync(join(containerd.state, 'io.containerd.grpc.v1.cri', 'netns', n)).isDirectory()), [], 'no pod network namespace');
  assert.deepEqual(containerd.leftoverMounts().filter((m) => m.includes('io.containerd.snapshotter') || m.includes('netns')), [], 'no mount');
  assert.deepEqual(fifosUnder(containerd.state), [], 'no FIFO');
  assert.ok(!readFileSync('/proc/mounts', 'utf8').includes(join(daemon.root, 'pod-rootfs')), 'no rootfs build mount of hypercored');
}

