/**
 * Workloads under the in-guest agent, end to end on a real QEMU guest: an OCI image (busybox) from a
 * real local registry runs under crun inside the VM; exec, attach and run go CLI → daemon → TTRPC over
 * virtio-serial → agent → process, and survive a daemon SIGKILL.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Vm } from '../../src/core/vm.js';
import { startRegistry, type RegistryProcess } from '../../src/images/registry/testing/registry-process.js';
import { pushBusyboxImage } from './busybox-image.js';
import { WebSocket } from 'ws';
import { isAlive, lastLine, repoRoot, sleep, TestDaemon, waitFor } from './harness.js';

const daemon = new TestDaemon('hc-e2e-agent-');
let registry: RegistryProcess;
let imageRef: string;
let vmId: string;

before(async () => {
  registry = await startRegistry();
  imageRef = await pushBusyboxImage(registry, 'NAME="Hypercore agent test"\nID=hcagent\n');
  process.env['HYPERCORE_AGENT_TIMEOUT'] = '90';
  await daemon.start();
  const hac = join(daemon.dir, 'agent.toml');
  writeFileSync(hac, `[spacecore]\nname = "agentvm"\n[hardware]\nmemory = 256\nref = "${imageRef}"\n[workload]\ncommand = ["sh", "-c", "echo workload-started; exec sleep 100000"]\ntty = true\n[hypervisor]\nprovider = "qemu"\n[network]\nmode = "none"\n`);
  const spawned = daemon.cli(['spawn', '--hac', hac]);
  assert.equal(spawned.code, 0, `${spawned.stderr}\n${daemon.log()}`);
  vmId = lastLine(spawned.stdout);
});

after(async () => {
  spawnSync('tmux', ['kill-server'], { env: { ...process.env, TMUX_TMPDIR: daemon.dir } });
  await daemon.cleanup();
  await registry?.stop();
});

test('spawn waits for the agent: the VM is running and the workload output is in the logs', async () => {
  const vm = JSON.parse(daemon.cli(['inspect', '--json', vmId]).stdout) as Vm;
  assert.equal(vm.state, 'running');
  await waitFor('workload output in the logs', 30_000, () => (daemon.cli(['logs', vmId]).stdout.includes('workload-started') ? true : undefined));
});

test('exec: stdout and stderr on their own streams and the exit code', () => {
  const r = daemon.cli(['exec', vmId, '--', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
  assert.equal(r.code, 3, r.stderr);
  assert.equal(r.stdout, 'out\n');
  assert.equal(r.stderr, 'err\n');
});

test('exec runs inside the image: its files are there, and a missing command exits 127', () => {
  const r = daemon.cli(['exec', vmId, '--', 'cat', '/etc/os-release']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Hypercore agent test/);
  const missing = daemon.cli(['exec', vmId, '--', 'no-such-command']);
  assert.equal(missing.code, 127);
  assert.match(missing.stderr, /no-such-command/);
});

test('exec over HTTP: a WebSocket on the same unix socket, with the gRPC messages in JSON', async () => {
  const ws = new WebSocket(`ws+unix://${daemon.socket}:/v1/vms/${vmId}/exec`);
  const messages: { processId?: string; fd?: number; data?: string; exited?: boolean; exitCode?: number }[] = [];
  await new Promise<void>((resolve, reject) => {
    ws.on('open', () => {
      ws.send(JSON.stringify({ start: { args: ['sh', '-c', 'read line; echo "got $line"; echo oops >&2; exit 5'] } }));
      ws.send(JSON.stringify({ stdin: Buffer.from('hello\n').toString('base64') }));
    });
    ws.on('message', (raw: Buffer) => messages.push(JSON.parse(raw.toString('utf8')) as (typeof messages)[number]));
    ws.on('close', () => resolve());
    ws.on('error', reject);
    setTimeout(() => reject(new Error('the WebSocket exec did not finish in 60 s')), 60_000).unref();
  });
  const text = (fd: number) => messages.filter((m) => m.fd === fd && m.data).map((m) => Buffer.from(m.data!, 'base64').toString()).join('');
  assert.ok(messages[0]?.processId, 'the process id comes first');
  assert.equal(text(1), 'got hello\n');
  assert.equal(text(2), 'oops\n');
  assert.deepEqual(messages.at(-1), { exited: true, exitCode: 5 });
});

test("exec is a fork of the workload's resident helper: the main process's namespaces and cgroup, pipes as stdio, the user asked for, signals", async () => {
  const script = [
    'tr -d "\\0" < /proc/$PPID/cmdline; echo',
    'for ns in pid mnt uts ipc cgroup; do [ "$(readlink /proc/self/ns/$ns)" = "$(readlink /proc/1/ns/$ns)" ] && echo same-$ns; done',
    '[ "$(cat /proc/self/cgroup)" = "$(cat /proc/1/cgroup)" ] && echo in-the-cgroup',
    'hostname',
  ].join('; ');
  const r = daemon.cli(['exec', vmId, '--', 'sh', '-c', script]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '/proc/self/fd/3\nsame-pid\nsame-mnt\nsame-uts\nsame-ipc\nsame-cgroup\nin-the-cgroup\nagentvm\n');
  // Another user: its ids, and its stdio are pipes it may reopen (/dev/stdout), as with Docker.
  const user = daemon.cli(['exec', '-u', '1000:1000', vmId, '--', 'sh', '-c', 'id -u; id -g; echo via-dev-stdout > /dev/stdout; echo via-dev-stderr > /dev/stderr']);
  assert.equal(user.code, 0, user.stderr);
  assert.equal(user.stdout, '1000\n1000\nvia-dev-stdout\n');
  assert.equal(user.stderr, 'via-dev-stderr\n');
  // A signal sent over the exec stream ends the process, and the exit names it.
  const ws = new WebSocket(`ws+unix://${daemon.socket}:/v1/vms/${vmId}/exec`);
  const last = await new Promise<{ exited?: boolean; exitCode?: number; signal?: string }>((resolve, reject) => {
    let final = {};
    ws.on('open', () => ws.send(JSON.stringify({ start: { args: ['sleep', '100'] } })));
    ws.on('message', (raw: Buffer) => {
      const m = JSON.parse(raw.toString('utf8')) as { processId?: string; exited?: boolean };
      if (m.processId) ws.send(JSON.stringify({ signal: 'SIGTERM' }));
      if (m.exited) final = m;
    });
    ws.on('close', () => resolve(final));
    ws.on('error', reject);
    setTimeout(() => reject(new Error('the signalled exec did not end in 60 s')), 60_000).unref();
  });
  assert.deepEqual(last, { exited: true, exitCode: 143, signal: 'SIGTERM' });
  assert.match(daemon.cli(['logs', vmId]).stdout, /exec helper ready/);
});

test('pause freezes the guest (its clock stops, exec is refused with the reason); resume lets it run on', async () => {
  const uptime = () => Number(daemon.cli(['exec', vmId, '--', 'cut', '-d.', '-f1', '/proc/uptime']).stdout.trim());
  const guestBefore = uptime();
  const hostBefore = Date.now();
  assert.equal(daemon.cli(['pause', vmId]).code, 0);
  assert.equal((JSON.parse(daemon.cli(['inspect', '--json', vmId]).stdout) as Vm).state, 'paused');
  const refused = daemon.cli(['exec', vmId, '--', 'true']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /is paused; resume it first.*HC_VM_STATE_CONFLICT/);
  await sleep(4000);
  assert.equal(daemon.cli(['resume', vmId]).code, 0);
  const guestAfter = uptime();
  const hostSeconds = (Date.now() - hostBefore) / 1000;
  // The guest did not count the 4 s it was frozen (uptime is whole seconds: allow 1.5 s of slack).
  assert.ok(hostSeconds - (guestAfter - guestBefore) >= 2.5, `host ${hostSeconds.toFixed(1)} s, guest ${guestAfter - guestBefore} s`);
  assert.equal((JSON.parse(daemon.cli(['inspect', '--json', vmId]).stdout) as Vm).state, 'running');
});

test('exec -i streams 1 MiB of stdin through cat byte for byte', () => {
  const input = randomBytes(1024 * 1024);
  const cat = spawnSync(process.execPath, [join(repoRoot, 'bin', 'hypercore'), 'exec', '-i', vmId, '--', 'cat'], { env: daemon.env, input, maxBuffer: 8 * 1024 * 1024, timeout: 120_000 });
  assert.equal(cat.status, 0, cat.stderr.toString());
  assert.equal(createHash('sha256').update(cat.stdout).digest('hex'), createHash('sha256').update(input).digest('hex'));
});

function tmux(...args: string[]): string {
  return execFileSync('tmux', args, { env: { ...process.env, TMUX_TMPDIR: daemon.dir }, encoding: 'utf8' });
}

test('exec -it under tmux: a real tty whose size follows the pane, and a shell with job control (^Z, fg, ^C, background jobs)', async () => {
  const hypercore = join(repoRoot, 'bin', 'hypercore');
  const env = Object.entries(daemon.env).filter(([k]) => k.startsWith('HYPERCORE_')).map(([k, v]) => `${k}=${v}`).join(' ');
  tmux('new-session', '-d', '-s', 'hc', '-x', '100', '-y', '30', `env ${env} ${hypercore} exec -it ${vmId} -- sh`);
  const screen = () => tmux('capture-pane', '-p', '-t', 'hc');
  // Keys go in at a prompt, as a person types them: busybox's line editor asks the terminal where its
  // cursor is after each prompt, and a line typed ahead of tmux's answer gets that answer echoed into it.
  const atPrompt = (after: string) =>
    waitFor(`a prompt after "${after}"`, 20_000, () => {
      const lines = screen().trimEnd().split('\n');
      const last = lines.map((l) => l.includes(after)).lastIndexOf(true);
      return last >= 0 && last < lines.length - 1 && /[#$] *$/.test(lines.at(-1)!) ? true : undefined;
    });
  await waitFor('a shell prompt', 30_000, () => (/[#$] *$/m.test(screen()) ? true : undefined));
  // The shell leads a session inside the container whose controlling terminal is the pty.
  assert.doesNotMatch(screen(), /job control turned off/);
  // ^Z stops the foreground job, fg resumes it, ^C interrupts it: the shell lives on.
  tmux('send-keys', '-t', 'hc', 'sleep 100', 'Enter');
  await sleep(1000);
  tmux('send-keys', '-t', 'hc', 'C-z');
  await waitFor('the stopped job', 20_000, () => (/Stopped\s+sleep 100/.test(screen()) ? true : undefined));
  await atPrompt('Stopped');
  tmux('send-keys', '-t', 'hc', 'fg', 'Enter');
  await sleep(1000);
  tmux('send-keys', '-t', 'hc', 'C-c');
  await atPrompt('fg');
  tmux('send-keys', '-t', 'hc', 'echo "status=$?"', 'Enter');
  await waitFor('the interrupted job to end with 130, the shell alive', 20_000, () => (/^status=130/m.test(screen()) ? true : undefined));
  await atPrompt('status=130');
  tmux('send-keys', '-t', 'hc', 'sleep 100 &', 'Enter');
  await atPrompt('sleep 100 &');
  tmux('send-keys', '-t', 'hc', 'jobs; kill %1', 'Enter');
  await waitFor('the background job listed', 20_000, () => (/^\[1\][ +]*Running +sleep 100/m.test(screen()) ? true : undefined));
  await atPrompt('Running');
  tmux('send-keys', '-t', 'hc', 'clear; tty; stty size', 'Enter');
  await waitFor('tty output', 20_000, () => (/\/dev\/pts\/\d+/.test(screen()) && /\d+ \d+/.test(screen()) ? true : undefined));
  assert.match(screen(), /30 100/);
  tmux('resize-window', '-t', 'hc', '-x', '120', '-y', '40');
  await sleep(500);
  // The prompt after the last command (the resize itself prints nothing).
  await atPrompt('30 100');
  tmux('send-keys', '-t', 'hc', 'clear; stty size', 'Enter');
  await waitFor('the new size', 20_000, () => (/40 120/.test(screen()) ? true : undefined));
  await atPrompt('40 120');
  tmux('send-keys', '-t', 'hc', 'exit', 'Enter');
});

/** pid, process group, session, controlling terminal and its foreground group, from a /proc/PID/stat line. */
function sessionOf(stat: string): { pid: number; pgrp: number; session: number; ttyNr: number; tpgid: number } {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).trim().split(' ').map(Number);
  return { pid: Number(stat.trim().split(' ')[0]), pgrp: fields[2]!, session: fields[3]!, ttyNr: fields[4]!, tpgid: fields[5]! };
}

function assertLeadsSessionOnTerminal(stat: string): void {
  const s = sessionOf(stat);
  assert.deepEqual([s.pgrp, s.session, s.tpgid], [s.pid, s.pid, s.pid], `not a session leader owning its terminal: ${stat}`);
  assert.notEqual(s.ttyNr, 0, `no controlling terminal: ${stat}`);
}

test('a terminal workload (workload.tty, crun run) and a terminal exec through crun exec (no helper) also lead a session in the container on their pty', async () => {
  const main = daemon.cli(['exec', vmId, '--', 'cat', '/proc/1/stat']);
  assert.equal(main.code, 0, main.stderr);
  assertLeadsSessionOnTerminal(main.stdout);
  // Without the resident helper (killed from inside), the next exec goes through its own crun exec.
  daemon.cli(['exec', vmId, '--', 'sh', '-c', 'for p in /proc/[0-9]*; do [ "$(tr -d "\\0" < $p/cmdline)" = /proc/self/fd/3 ] && kill -9 ${p#/proc/}; done']);
  await waitFor('the agent to see its helper gone', 20_000, () => (/execs go through crun again/.test(daemon.cli(['logs', vmId]).stdout) ? true : undefined));
  const viaCrun = daemon.cli(['exec', '-t', vmId, '--', 'sh', '-c', 'exec cat /proc/self/stat']);
  assert.equal(viaCrun.code, 0, viaCrun.stderr);
  assertLeadsSessionOnTerminal(viaCrun.stdout);
  assert.ok(sessionOf(viaCrun.stdout).pid > 1);
});

test('attach, then ctrl-p ctrl-q: the client detaches and the VM keeps running', async () => {
  const hypercore = join(repoRoot, 'bin', 'hypercore');
  const env = Object.entries(daemon.env).filter(([k]) => k.startsWith('HYPERCORE_')).map(([k, v]) => `${k}=${v}`).join(' ');
  tmux('new-session', '-d', '-s', 'att', '-x', '80', '-y', '24', `env ${env} ${hypercore} attach ${vmId}; echo attach-exited-$?; sleep 60`);
  await sleep(2000);
  tmux('send-keys', '-t', 'att', 'C-p', 'C-q');
  await waitFor('the attach client to exit', 20_000, () => (/attach-exited-0/.test(tmux('capture-pane', '-p', '-t', 'att')) ? true : undefined));
  assert.match(tmux('capture-pane', '-p', '-t', 'att'), /detached/);
  const vm = JSON.parse(daemon.cli(['inspect', '--json', vmId]).stdout) as Vm;
  assert.equal(vm.state, 'running');
});

test('a daemon SIGKILL does not stop a running exec; after the restart its effect is there', async () => {
  const pending = daemon.cliAsync(['exec', vmId, '--', 'sh', '-c', 'sleep 5; echo done > /tmp/x']);
  await sleep(1500);
  const vm = JSON.parse(daemon.cli(['inspect', '--json', vmId]).stdout) as Vm;
  await daemon.kill9();
  await pending;
  assert.ok(isAlive(vm.pid!), 'the VM survives');
  await daemon.start();
  await sleep(6000);
  const r = daemon.cli(['exec', vmId, '--', 'cat', '/tmp/x']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'done\n');
});

test('exec into a stopped VM is a clear conflict; stop powers the guest off through the agent', () => {
  const stop = daemon.cli(['stop', '-t', '20', vmId]);
  assert.equal(stop.code, 0, stop.stderr);
  const r = daemon.cli(['exec', vmId, '--', 'true']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /is stopped.*HC_VM_STATE_CONFLICT/);
  assert.equal(daemon.cli(['rm', vmId]).code, 0);
});

test('run --rm IMAGE -- cat /etc/os-release prints the file and leaves nothing behind', () => {
  const r = daemon.cli(['run', '--rm', '--network', 'none', imageRef, '--', 'cat', '/etc/os-release']);
  assert.equal(r.code, 0, `${r.stderr}\n${daemon.log().slice(-3000)}`);
  assert.equal(r.stdout, 'NAME="Hypercore agent test"\nID=hcagent\n');
  assert.deepEqual(JSON.parse(daemon.cli(['ls', '--json']).stdout), []);
  assert.deepEqual(daemon.vmDirs(), []);
});

test('a guest whose init fails is marked failed and the error carries the console tail', () => {
  const hac = join(daemon.dir, 'broken.toml');
  writeFileSync(hac, `[spacecore]\nname = "broken"\n[hardware]\nmemory = 192\nref = "${imageRef}"\nkernel_args = "hc.init=/no/such/init"\n[workload]\ncommand = ["true"]\n[network]\nmode = "none"\n`);
  const r = daemon.cli(['spawn', '--hac', hac]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /HC_AGENT_UNAVAILABLE/);
  assert.match(r.stderr, /hypercore-init/, 'the console tail is in the error');
  const vm = JSON.parse(daemon.cli(['inspect', '--json', 'broken']).stdout) as Vm;
  assert.equal(vm.state, 'failed');
  assert.equal(daemon.cli(['rm', 'broken']).code, 0);
});
