/**
 * Bad input against a real daemon: each case must fail with a clear error naming the culprit and
 * leave nothing behind (no VM record, process, socket, pidfile or directory).
 */
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildDemoRootfs } from '../../src/guest/demo-rootfs.js';
import type { Vm } from '../../src/core/vm.js';
import { lastLine, processesMentioning, TestDaemon, waitFor } from './harness.js';

const daemon = new TestDaemon('hc-e2e-bad-');
let drive: string;

function hac(name: string, extra = '', hardware = ''): string {
  const file = join(daemon.dir, `${name}.toml`);
  writeFileSync(file, `[spacecore]\nname = "${name}"\n[hardware]\nmemory = 128\ndrive = "rootfs.ext4"\n${hardware}[hypervisor]\nprovider = "qemu"\n${extra}[network]\nmode = "none"\n`);
  return file;
}

/**
 * A stand-in for qemu-system-x86_64 that answers --version and then behaves as `mode` says. The hac
 * files that use it set accel = "tcg", so the accelerator probe (which would run it too) is skipped.
 */
function fakeQemu(mode: 'fail' | 'hang'): string {
  const file = join(daemon.dir, `fake-qemu-${mode}.mjs`);
  const body =
    mode === 'fail'
      ? `process.stderr.write('qemu-system-x86_64: -drive id=root: Could not open disk: simulated failure\\n'); process.exit(1);`
      : // Writes its pidfile like QEMU does early in start-up, then never finishes starting.
        `import { writeFileSync } from 'node:fs'; const i = process.argv.indexOf('-pidfile'); if (i > 0) writeFileSync(process.argv[i + 1], String(process.pid)); setInterval(() => {}, 1000);`;
  writeFileSync(file, `#!${process.execPath}\nif (process.argv.includes('--version')) { console.log('QEMU emulator version 7.2 (fake)'); process.exit(0); }\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

function vms(): Vm[] {
  const r = daemon.cli(['ls', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Vm[];
}

function assertNothingLeft(): void {
  assert.deepEqual(vms(), [], 'no VM record');
  assert.deepEqual(daemon.vmDirs(), [], 'no VM directory, socket or pidfile');
  assert.deepEqual(daemon.strayProcesses(), [], 'no process');
}

before(async () => {
  drive = join(daemon.dir, 'rootfs.ext4');
  await buildDemoRootfs({ output: drive });
  await daemon.start();
});
afterEach(async () => {
  // Each case starts from an empty daemon even when the previous one failed half-way.
  for (const vm of vms()) daemon.cli(['rm', '-f', vm.id]);
});
after(async () => {
  await daemon.cleanup();
});

test('an unknown VM id is a not-found error on the CLI and a 404 over HTTP', () => {
  const r = daemon.cli(['inspect', 'no-such-vm']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no VM matches "no-such-vm".*HC_VM_NOT_FOUND/);
  const status = execFileSync('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--unix-socket', daemon.socket, 'http://localhost/v1/vms/no-such-vm'], { encoding: 'utf8' });
  assert.equal(status, '404');
  for (const args of [['stop', 'no-such-vm'], ['start', 'no-such-vm'], ['rm', 'no-such-vm'], ['logs', 'no-such-vm']]) {
    const res = daemon.cli(args);
    assert.equal(res.code, 1, args.join(' '));
    assert.match(res.stderr, /HC_VM_NOT_FOUND/);
  }
});

test('a malformed hac.toml names file, line and column; nothing is created', () => {
  const file = join(daemon.dir, 'broken.toml');
  writeFileSync(file, '[spacecore]\nname = "x"\n[hardware\ndrive = "rootfs.ext4"\n');
  const r = daemon.cli(['spawn', '--hac', file]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /broken\.toml:3:\d+/);
  assert.match(r.stderr, /HC_CONFIG_INVALID/);
  assertNothingLeft();
});

test('semantically invalid values and a missing drive are all reported with their keys', () => {
  const file = join(daemon.dir, 'invalid.toml');
  writeFileSync(file, '[spacecore]\nname = "x"\n[hardware]\ncores = 0\nmemory = 16\ndrive = "missing.ext4"\n');
  const r = daemon.cli(['spawn', '--hac', file]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /invalid\.toml:4:9: hardware\.cores = 0/);
  assert.match(r.stderr, /invalid\.toml:5:10: hardware\.memory = 16/);
  assert.match(r.stderr, /hardware\.drive = "missing\.ext4": file not found/);
  assertNothingLeft();
});

test('an invalid spec sent straight to the API is a 400 with details', () => {
  const body = JSON.stringify({ spec: { name: 'bad name!', cores: 0, drive: '/nonexistent/disk.img' } });
  const out = execFileSync('curl', ['-s', '-w', '\n%{http_code}', '--unix-socket', daemon.socket, '-H', 'content-type: application/json', '-d', body, 'http://localhost/v1/vms'], { encoding: 'utf8' });
  const [json, status] = [out.slice(0, out.lastIndexOf('\n')), lastLine(out)];
  assert.equal(status, '400');
  const error = (JSON.parse(json) as { error: { code: string; details: { path: string }[] } }).error;
  assert.equal(error.code, 'HC_INVALID_ARGUMENT');
  assert.deepEqual(error.details.map((d) => d.path).sort(), ['spec.cores', 'spec.drive', 'spec.name']);
  assertNothingLeft();
});

test('a missing hypervisor binary is a clear error and creates nothing', () => {
  const r = daemon.cli(['spawn', '--hac', hac('nobinary', '[hypervisor.qemu]\nbinary = "/nonexistent/qemu-system-x86_64"\n')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /QEMU is not usable: .*\/nonexistent\/qemu-system-x86_64.*not found.*HC_PROVIDER_UNAVAILABLE/);
  assertNothingLeft();
});

test('a hypervisor that exits at once: the error carries its stderr, and everything is rolled back', () => {
  const r = daemon.cli(['spawn', '--hac', hac('exits', `[hypervisor.qemu]\nbinary = "${fakeQemu('fail')}"\naccel = "tcg"\n`)]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /Could not open disk: simulated failure/);
  assert.match(r.stderr, /HC_PROVIDER_FAILED/);
  assertNothingLeft();
});

test('a name already taken is a conflict; the first VM is untouched', async () => {
  const first = daemon.cli(['spawn', '--hac', hac('taken')]);
  assert.equal(first.code, 0, first.stderr);
  const id = lastLine(first.stdout);
  const second = daemon.cli(['spawn', '--hac', hac('taken')]);
  assert.equal(second.code, 1);
  assert.match(second.stderr, new RegExp(`"taken" is already used by VM ${id}.*HC_VM_NAME_TAKEN`));
  const list = vms();
  assert.deepEqual(list.map((v) => [v.id, v.state]), [[id, 'running']]);
});

test('stop and rm -f racing on one VM: both return, and nothing is left', async () => {
  const spawn = daemon.cli(['spawn', '--hac', hac('racer')]);
  assert.equal(spawn.code, 0, spawn.stderr);
  const id = lastLine(spawn.stdout);
  const [stop, rm] = await Promise.all([daemon.cliAsync(['stop', '-t', '1', id]), daemon.cliAsync(['rm', '-f', id])]);
  assert.equal(rm.code, 0, rm.stderr);
  // stop either won the race (then rm removed a stopped VM) or found the VM already gone.
  assert.ok(stop.code === 0 || /HC_VM_NOT_FOUND/.test(stop.stderr), stop.stderr);
  assertNothingLeft();
});

test('hypercored killed with SIGKILL mid-create: the restarted daemon resumes the create and adopts the launched VMM, never a second one', async () => {
  const pending = daemon.cliAsync(['spawn', '--hac', hac('midcreate', `[hypervisor.qemu]\nbinary = "${fakeQemu('hang')}"\naccel = "tcg"\n`)]);
  // Wait until the VMM stand-in is running (it wrote its pidfile), so the kill lands mid-create.
  // Wait until the stand-in wrote its pidfile, as QEMU does early in start-up, so the kill lands
  // after the launch began (its --version check also runs it, briefly).
  const vmm = () => processesMentioning(fakeQemu('hang'));
  const pidFiles = () => daemon.vmDirs().filter((d) => d.startsWith(daemon.runDir)).map((d) => join(d, 'qemu.pid')).filter((f) => existsSync(f));
  const [pidFile] = await waitFor('the hypervisor to be launched', 20_000, () => (pidFiles().length > 0 ? pidFiles() : undefined));
  const launched = Number(readFileSync(pidFile!, 'utf8'));
  assert.deepEqual(vmm(), [launched]);
  await daemon.kill9();
  const result = await pending;
  assert.notEqual(result.code, 0);
  await daemon.start();
  const resumed = await waitFor('the resumed create', 20_000, () => vms().find((vm) => vm.name === 'midcreate' && vm.state === 'running')).catch((err: Error) => {
    throw new Error(`${err.message}; VMs: ${JSON.stringify(vms())}\n${daemon.log()}`);
  });
  assert.equal(resumed.pid, launched, 'the VMM the dead daemon launched was adopted');
  assert.deepEqual(vmm(), [launched], 'no second VMM was launched');
  assert.equal(daemon.cli(['rm', '-f', 'midcreate']).code, 0);
  assertNothingLeft();
});
