/**
 * The interactive serial console: a kernel-only QEMU guest whose /init runs a shell on ttyS0, typed
 * into over `GET /v1/vms/{id}/serial` (WebSocket on the daemon's unix socket). Checks the one-client
 * rule, that the console log (QEMU's chardev logfile) still gets every byte and still rotates at its
 * cap, that a VM adopted by a restarted daemon keeps its serial console, and `hypercore console`.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { bootDir, lastLine, repoRoot, TestDaemon, waitFor } from './harness.js';
import { writeBusyboxInitramfs } from './hello-initramfs.js';

const daemon = new TestDaemon('hc-e2e-serial-');
let id = '';

/** A serial session: everything the guest printed so far, and the first error message, if any. */
interface Serial {
  ws: WebSocket;
  output: () => string;
  error: () => { code?: string; message?: string } | undefined;
  closed: Promise<number>;
}

function openSerial(vm: string): Promise<Serial> {
  const ws = new WebSocket(`ws+unix://${daemon.socket}:/v1/vms/${vm}/serial`);
  const chunks: Buffer[] = [];
  let error: { code?: string; message?: string } | undefined;
  ws.on('message', (data: Buffer, binary: boolean) => {
    if (binary) chunks.push(data);
    else error ??= (JSON.parse(data.toString()) as { error: { code?: string; message?: string } }).error;
  });
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, output: () => Buffer.concat(chunks).toString('latin1'), error: () => error, closed }));
    ws.once('error', reject);
  });
}

/** Types `line` and waits for `expect` in the output after it. */
async function run(serial: Serial, line: string, expect: RegExp, timeoutMs = 30_000): Promise<string> {
  const from = serial.output().length;
  serial.ws.send(`${line}\n`);
  return waitFor(`${expect} after typing ${line}`, timeoutMs, () => serial.output().slice(from).match(expect)?.[0]);
}

const consoleLog = () => join(daemon.root, 'vms', id, 'console.log');

before(async () => {
  // A shell on the console (ttyS0), after a line that says it is there.
  const init = '#!/bin/busybox sh\n/bin/busybox --install -s /bin\necho serial-shell-ready\nexec sh\n';
  await writeBusyboxInitramfs(join(daemon.dir, 'shell.cpio.gz'), init);
  const file = join(daemon.dir, 'tty.toml');
  writeFileSync(file, `[spacecore]\nname = "tty"\n[hardware]\nmemory = 128\nkernel = "${join(bootDir, 'vmlinuz')}"\ninitrd = "shell.cpio.gz"\n[hypervisor]\nprovider = "qemu"\n[hypervisor.qemu]\naccel = "tcg"\n[network]\nmode = "none"\n`);
  await daemon.start();
  const spawn = daemon.cli(['spawn', '--hac', file]);
  assert.equal(spawn.code, 0, `${spawn.stderr}\n${daemon.log()}`);
  id = lastLine(spawn.stdout);
  await waitFor('the shell on ttyS0', 90_000, () => readFileSync(consoleLog(), 'latin1').includes('serial-shell-ready') || undefined);
});

after(async () => {
  await daemon.cleanup();
});

test('typing into the serial console reaches the shell on ttyS0; the socket is 0600; the log still gets the output', async () => {
  assert.equal(statSync(join(daemon.runDir, 'vms', id, 'serial.sock')).mode & 0o777, 0o600);
  const serial = await openSerial(id);
  try {
    await run(serial, 'echo $((6*7))', /^42\r?$/m);
    await waitFor('42 in the console log', 5000, () => /^42\r?$/m.test(readFileSync(consoleLog(), 'latin1')) || undefined);
  } finally {
    serial.ws.close();
    await serial.closed;
  }
});

test('one client at a time: a second is refused and the first keeps typing; after it leaves, another may connect', async () => {
  const first = await openSerial(id);
  try {
    const second = await openSerial(id);
    assert.equal(await second.closed, 1008);
    assert.equal(second.error()?.code, 'HC_VM_STATE_CONFLICT');
    assert.match(second.error()?.message ?? '', /serial console is in use by another client/);
    await run(first, 'echo first-$((2+3))', /first-5/);
  } finally {
    first.ws.close();
    await first.closed;
  }
  const again = await openSerial(id);
  await run(again, 'echo again-$((2+4))', /again-6/);
  again.ws.close();
  await again.closed;
  const unknown = await openSerial('no-such-vm');
  assert.equal(await unknown.closed, 1008);
  assert.equal(unknown.error()?.code, 'HC_VM_NOT_FOUND');
});

test('hypercore console types stdin into the serial console and prints the guest\'s answer; a held console refuses it by name', async () => {
  const typed = daemon.cli(['console', 'tty'], 'echo cli-$((7*6))\n');
  assert.equal(typed.code, 0, typed.stderr);
  assert.match(typed.stdout, /^cli-42\r?$/m);
  const holder = await openSerial(id);
  try {
    const refused = daemon.cli(['console', 'tty'], 'echo never\n');
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /serial console is in use by another client/);
  } finally {
    holder.ws.close();
    await holder.closed;
  }
});

test('hypercore console in a terminal: raw keys reach the guest, Ctrl-] leaves and the VM runs on', async () => {
  // script(1) gives the CLI a pseudo-terminal, so it takes the raw-mode path a person's terminal takes.
  const cli = spawn('script', ['-qfec', `${process.execPath} ${join(repoRoot, 'bin', 'hypercore')} console tty`, '/dev/null'], { env: daemon.env, stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  cli.stdout.on('data', (c: Buffer) => (output += c.toString('latin1')));
  const exited = new Promise<number | null>((resolve) => cli.once('exit', resolve));
  try {
    await waitFor('the console banner', 20_000, () => output.includes('Ctrl-] leaves') || undefined);
    cli.stdin.write('echo tty-$((8*8))\r');
    await waitFor('the guest answering', 20_000, () => /^tty-64\r?$/m.test(output) || undefined);
    cli.stdin.write('\x1d');
    assert.equal(await exited, 0, output);
    assert.match(output, /left the console; the VM keeps running/);
  } finally {
    cli.kill();
  }
  assert.equal(JSON.parse(daemon.cli(['inspect', id, '--json']).stdout).state, 'running');
});

test('the console log still rotates at its cap while QEMU logs into it (copy-truncate on an O_APPEND logfile)', async () => {
  const serial = await openSerial(id);
  try {
    // 1.3 MB of output, over the default 1 MiB cap; the daemon rotates every 5 s.
    await run(serial, 'yes 0123456789abcdef | head -c 1300000; echo; echo burst-$((5*5))', /burst-25/, 120_000);
    const rotated = `${consoleLog()}.1`;
    await waitFor('the rotation', 20_000, () => existsSync(rotated) && statSync(consoleLog()).size < 1024 * 1024 || undefined);
    await run(serial, 'echo after-$((3*3))', /after-9/);
    const live = await waitFor('the new line in the live log', 5000, () => {
      const text = readFileSync(consoleLog(), 'latin1');
      return /after-9/.test(text) ? text : undefined;
    });
    // Without O_APPEND, QEMU would write on at its old offset: a file as big as before, starting with a hole.
    assert.ok(live.length < 1024 * 1024, `live log ${live.length} bytes`);
    assert.ok(!live.includes('\0'), 'no hole of NUL bytes in the live log');
  } finally {
    serial.ws.close();
    await serial.closed;
  }
});

test('a VM adopted by a restarted daemon keeps its serial console', async () => {
  await daemon.kill9();
  await daemon.start();
  const serial = await openSerial(id);
  await run(serial, 'echo adopted-$((4*4))', /adopted-16/);
  serial.ws.close();
  await serial.closed;
  assert.equal(daemon.cli(['rm', '--force', id]).code, 0);
  assert.deepEqual(daemon.strayProcesses(), []);
});
