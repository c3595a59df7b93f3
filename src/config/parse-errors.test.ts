import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigInvalidError, ErrorCodes, type ValidationIssue } from '../core/errors.js';
import { parseHac, specFromImageReference, type HacOverrides } from './index.js';

const dir = mkdtempSync(join(tmpdir(), 'hac-errors-'));
writeFileSync(join(dir, 'root.ext4'), '');
mkdirSync(join(dir, 'adir'));

/** Parses as `hac.toml` in the temp dir (host with 2 CPUs) and returns the thrown error. */
function fail(text: string, overrides?: HacOverrides): ConfigInvalidError {
  try {
    parseHac(text, { file: 'hac.toml', hostCpus: 2, cwd: dir, overrides });
  } catch (err) {
    assert.ok(err instanceof ConfigInvalidError, `expected ConfigInvalidError, got ${String(err)}`);
    assert.equal(err.code, ErrorCodes.configInvalid);
    return err;
  }
  assert.fail('expected parseHac to throw');
}

/** The one problem of `text` (after a valid [spacecore] and drive), as a `location: message` line. */
function only(text: string, overrides?: HacOverrides): { line: string; issue: ValidationIssue } {
  const err = fail(text, overrides);
  assert.equal(err.details.length, 1, err.message);
  const issue = err.details[0] as ValidationIssue;
  assert.equal(err.message, `${issue.location}: ${issue.message}`);
  return { line: err.message, issue };
}

const head = '[spacecore]\nname = "demo"\n[hardware]\ndrive = "root.ext4"\n'; // 4 lines

test('errors: TOML syntax errors give file:line:column and the parser description', () => {
  const { line, issue } = only('[spacecore]\nname = \n');
  assert.equal(line, 'hac.toml:2:8: invalid TOML: invalid value');
  assert.deepEqual(issue, { path: '', message: 'invalid TOML: invalid value', location: 'hac.toml:2:8' });
  assert.equal(only('a = 1\nb = 2\na = 3\n').line, 'hac.toml:3:1: invalid TOML: trying to redefine an already defined table or value');
});

test('errors: a syntax error keeps the parser error as cause', () => {
  assert.ok(fail('x = [1,\n').cause instanceof Error);
});

test('errors: unknown key with a "did you mean" suggestion at the key column', () => {
  const { line, issue } = only(`${head}core = 2\n`);
  assert.equal(line, 'hac.toml:5:1: unknown key "hardware.core"; did you mean "hardware.cores"?');
  assert.deepEqual(issue, { path: 'hardware.core', message: 'unknown key "hardware.core"; did you mean "hardware.cores"?', location: 'hac.toml:5:1', value: 2 });
});

test('errors: unknown key in an inline table and as a dotted key', () => {
  assert.equal(only(`hardware = { drive = "root.ext4", memroy = 512 }\n[spacecore]\nname = "x"\n`).line, 'hac.toml:1:35: unknown key "hardware.memroy"; did you mean "hardware.memory"?');
  assert.equal(only(`${head}  kernel_arg = "quiet"\n`).line, 'hac.toml:5:3: unknown key "hardware.kernel_arg"; did you mean "hardware.kernel_args"?');
  assert.equal(only(`hypervisor.qemu.acel = "kvm"\n${head}`).line, 'hac.toml:1:1: unknown key "hypervisor.qemu.acel"; did you mean "hypervisor.qemu.accel"?');
});

test('errors: unknown tables, with suggestions from the same level', () => {
  assert.equal(only(`${head}[hypervisr]\nprovider = "qemu"\n`).line, 'hac.toml:5:1: unknown table "hypervisr"; did you mean "hypervisor"?');
  assert.equal(only(`${head}[hypervisor.cloud-hypervisor]\nbinary = "ch"\n`).line, 'hac.toml:5:1: unknown table "hypervisor.cloud-hypervisor"; did you mean "hypervisor.cloud_hypervisor"?');
});

test('errors: a key in the wrong table suggests the right one', () => {
  assert.equal(only(`${head}provider = "qemu"\n`).line, 'hac.toml:5:1: unknown key "hardware.provider"; did you mean "hypervisor.provider"?');
  assert.equal(only(`accel = "kvm"\n${head}`).line, 'hac.toml:1:1: unknown key "accel"; did you mean "hypervisor.qemu.accel"?');
});

test('errors: without a close key, the keys allowed there are listed', () => {
  assert.equal(only(`${head}[storage]\n`).line, 'hac.toml:5:1: unknown table "storage"; allowed at the top level: spacecore, hardware, workload, hypervisor, network, metadata');
  assert.equal(only(`${head}[hypervisor.qemu]\ngpu = true\n`).line, 'hac.toml:6:1: unknown key "hypervisor.qemu.gpu"; allowed in [hypervisor.qemu]: binary, accel');
});

test('errors: cores out of range names the host limit, at the value column', () => {
  const { line, issue } = only(`${head}cores =  0\n`);
  assert.equal(line, "hac.toml:5:10: hardware.cores = 0: must be an integer from 1 to 2 (this host's CPUs)");
  assert.equal(issue.path, 'hardware.cores');
  assert.equal(issue.value, 0);
  assert.equal(only(`${head}cores = 3\n`).line, "hac.toml:5:9: hardware.cores = 3: must be an integer from 1 to 2 (this host's CPUs)");
});

test('errors: wrong types show the value as written in TOML', () => {
  const allowed = "must be an integer from 1 to 2 (this host's CPUs)";
  assert.equal(only(`${head}cores = "2"\n`).line, `hac.toml:5:9: hardware.cores = "2": ${allowed}`);
  assert.equal(only(`${head}cores = 2.0\n`).line, `hac.toml:5:9: hardware.cores = 2.0: ${allowed}`);
  assert.equal(only(`${head}cores = 1.5\n`).line, `hac.toml:5:9: hardware.cores = 1.5: ${allowed}`);
  assert.equal(only(`${head}cores = [1, 2]\n`).line, `hac.toml:5:9: hardware.cores = [1, 2]: ${allowed}`);
  assert.equal(only(`${head}cores = true\n`).line, `hac.toml:5:9: hardware.cores = true: ${allowed}`);
  assert.equal(only(`${head}cores = -inf\n`).line, `hac.toml:5:9: hardware.cores = -inf: ${allowed}`);
  assert.equal(only(`${head}cores = { n = 2 }\n`).line, `hac.toml:5:9: hardware.cores = { n = 2 }: ${allowed}`);
  assert.equal(only(`${head}kernel = 1979-05-27\n`).line, 'hac.toml:5:10: hardware.kernel = 1979-05-27: must be a non-empty string (a path)');
  assert.equal(only(`${head}drive_readonly = "yes"\n`).line, 'hac.toml:5:18: hardware.drive_readonly = "yes": must be true or false');
});

test('errors: memory bounds, including integers too large for a number', () => {
  const allowed = 'must be an integer from 64 to 1048576 (MiB)';
  assert.equal(only(`${head}memory = 32\n`).line, `hac.toml:5:10: hardware.memory = 32: ${allowed}`);
  assert.equal(only(`${head}memory = 1048577\n`).line, `hac.toml:5:10: hardware.memory = 1048577: ${allowed}`);
  assert.equal(only(`${head}memory = 9223372036854775807\n`).line, `hac.toml:5:10: hardware.memory = 9223372036854775807: ${allowed}`);
});

test('errors: enums list the allowed values', () => {
  assert.equal(
    only(`${head}[hypervisor]\nprovider = "xen"\n`).line,
    'hac.toml:6:12: hypervisor.provider = "xen": must be one of "qemu", "firecracker", "cloud-hypervisor", "auto"',
  );
  assert.equal(only(`${head}[hypervisor.qemu]\naccel = "hvf"\n`).line, 'hac.toml:6:9: hypervisor.qemu.accel = "hvf": must be one of "auto", "kvm", "tcg"');
});

test('errors: names, interfaces, refs and binaries', () => {
  const nameRule = "must be 1-63 characters of letters, digits, '_', '.' and '-', starting with a letter or digit";
  assert.equal(only('[spacecore]\nname = "-bad"\n[hardware]\ndrive = "root.ext4"\n').line, `hac.toml:2:8: spacecore.name = "-bad": ${nameRule}`);
  assert.equal(only(`[spacecore]\nname = "${'a'.repeat(64)}"\n[hardware]\ndrive = "root.ext4"\n`).issue.path, 'spacecore.name');
  assert.equal(only('[spacecore]\nname = 5\n[hardware]\ndrive = "root.ext4"\n').line, `hac.toml:2:8: spacecore.name = 5: ${nameRule}`);
  const ifRule = "must be a host interface name: 1-15 characters, no '/' or whitespace";
  assert.equal(only(`${head}interface = "eth/0"\n`).line, `hac.toml:5:13: hardware.interface = "eth/0": ${ifRule}`);
  assert.equal(only(`${head}interface = "a-very-long-name0"\n`).line, `hac.toml:5:13: hardware.interface = "a-very-long-name0": ${ifRule}`);
  assert.equal(only(`${head}ref = ""\n`).line, 'hac.toml:5:7: hardware.ref = "": must be a non-empty string (an OCI image reference)');
  assert.equal(only(`${head}[hypervisor.qemu]\nbinary = ""\n`).line, 'hac.toml:6:10: hypervisor.qemu.binary = "": must be a non-empty string (a program name or path)');
});

test('errors: a table given as something else', () => {
  assert.equal(only('hardware = 5\n[spacecore]\nname = "x"\n').line, 'hac.toml:1:12: hardware = 5: must be a table');
  // A key below the wrong header is reported where it ended up, with a pointer to where it belongs.
  assert.equal(
    fail('[spacecore]\nname = "x"\nhardware = 5\n').details[1]?.message,
    'unknown key "spacecore.hardware"; did you mean "hardware"?',
  );
  assert.equal(only(`${head}[[hypervisor]]\n`).line, 'hac.toml:5:1: hypervisor = [{}]: must be a table');
});

test('errors: a missing required key names the table, at its header', () => {
  const { line, issue } = only('[hardware]\ndrive = "root.ext4"\n\n  [spacecore]\ndescription = "x"\n');
  assert.equal(line, 'hac.toml:4:3: missing required key "spacecore.name" in the [spacecore] table');
  assert.deepEqual(issue, { path: 'spacecore.name', message: 'missing required key "spacecore.name" in the [spacecore] table', location: 'hac.toml:4:3' });
});

test('errors: a missing table points at 1:1 and says to add it', () => {
  assert.equal(only('[hardware]\ndrive = "root.ext4"\n').line, 'hac.toml:1:1: missing required key "spacecore.name"; add it under a [spacecore] table');
});

test('errors: missing files give the resolved path at the value column', () => {
  const { line, issue } = only('[spacecore]\nname = "x"\n[hardware]\ndrive = "missing.ext4"\n');
  assert.equal(line, `hac.toml:4:9: hardware.drive = "missing.ext4": file not found (resolved to ${join(dir, 'missing.ext4')})`);
  assert.equal(issue.value, 'missing.ext4');
  assert.equal(only(`${head}kernel = "/no/vmlinux"\n`).line, 'hac.toml:5:10: hardware.kernel = "/no/vmlinux": file not found (resolved to /no/vmlinux)');
  assert.equal(only(`${head}initrd = "sub/initrd"\n`).line, `hac.toml:5:10: hardware.initrd = "sub/initrd": file not found (resolved to ${join(dir, 'sub/initrd')})`);
  assert.equal(only(`${head}kernel = "adir"\n`).line, `hac.toml:5:10: hardware.kernel = "adir": is a directory, not a file (resolved to ${join(dir, 'adir')})`);
});

test('errors: every problem is reported at once, in file order, under a summary line', () => {
  const text = '[spacecore]\nname = "ok"\n[hardware]\ncores = 9\ndrive = "gone.ext4"\ncore = 1\n[hypervisor]\nprovider = "xen"\n';
  const err = fail(text);
  assert.deepEqual(err.message.split('\n'), [
    'invalid hac.toml (4 problems):',
    "  hac.toml:4:9: hardware.cores = 9: must be an integer from 1 to 2 (this host's CPUs)",
    `  hac.toml:5:9: hardware.drive = "gone.ext4": file not found (resolved to ${join(dir, 'gone.ext4')})`,
    '  hac.toml:6:1: unknown key "hardware.core"; did you mean "hardware.cores"?',
    '  hac.toml:8:12: hypervisor.provider = "xen": must be one of "qemu", "firecracker", "cloud-hypervisor", "auto"',
  ]);
  assert.deepEqual(
    err.details.map((d) => [d.path, d.location]),
    [
      ['hardware.cores', 'hac.toml:4:9'],
      ['hardware.drive', 'hac.toml:5:9'],
      ['hardware.core', 'hac.toml:6:1'],
      ['hypervisor.provider', 'hac.toml:8:12'],
    ],
  );
});

test('errors: an invalid override names the flag instead of a file position', () => {
  assert.equal(only(head, { cores: 0 }).line, "--cores: hardware.cores = 0: must be an integer from 1 to 2 (this host's CPUs)");
  assert.equal(only(head, { memoryMib: 10 }).line, '--memory: hardware.memory = 10: must be an integer from 64 to 1048576 (MiB)');
  assert.equal(only(head, { provider: 'xen' }).issue.location, '--provider');
  assert.equal(only(head, { accel: 'hvf' }).line, '--accel: hypervisor.qemu.accel = "hvf": must be one of "auto", "kvm", "tcg"');
  assert.equal(only(head, { name: 'bad name' }).issue.location, '--name');
});

test('errors: override paths resolve against cwd, not the file folder', () => {
  const err = fail(head.replace('root.ext4', 'x.ext4'), { drive: 'nope.ext4', cores: 5 });
  assert.deepEqual(err.message.split('\n'), [
    'invalid hac.toml (2 problems):',
    "  --cores: hardware.cores = 5: must be an integer from 1 to 2 (this host's CPUs)",
    `  --drive: hardware.drive = "nope.ext4": file not found (resolved to ${join(dir, 'nope.ext4')})`,
  ]);
  const other = fail(head, { kernel: 'k' });
  assert.equal(other.details[0]?.location, '--kernel');
});

test('errors: file problems come before flag problems', () => {
  const err = fail(`${head}memory = 1\n`, { cores: 0 });
  assert.deepEqual(err.details.map((d) => d.location), ['hac.toml:5:10', '--cores']);
});

const neither = 'missing required key "hardware.drive", "hardware.ref" or "hardware.kernel": a disk to boot, an OCI image to run, or a kernel (and initrd) to boot alone';

test('errors: neither drive nor ref names both keys, at the [hardware] header', () => {
  const { line, issue } = only('[spacecore]\nname = "x"\n\n  [hardware]\ncores = 1\n');
  assert.equal(line, `hac.toml:4:3: ${neither}`);
  assert.deepEqual(issue, { path: 'hardware', message: neither, location: 'hac.toml:4:3' });
  assert.equal(only('hardware = { cores = 1 }\n[spacecore]\nname = "x"\n').line, `hac.toml:1:12: ${neither}`);
  assert.equal(only('spacecore.name = "x"\nhardware.cores = 1\n').line, `hac.toml:2:1: ${neither}`);
});

test('errors: neither drive nor ref without a [hardware] table points at 1:1', () => {
  assert.equal(only('[spacecore]\nname = "x"\n').line, `hac.toml:1:1: ${neither}`);
  assert.deepEqual(fail('').message.split('\n'), [
    'invalid hac.toml (2 problems):',
    '  hac.toml:1:1: missing required key "spacecore.name"; add it under a [spacecore] table',
    `  hac.toml:1:1: ${neither}`,
  ]);
});

test('errors: neither drive nor ref is reported with the other problems', () => {
  const err = fail('[spacecore]\nname = "x"\n[hardware]\ncores = 9\n[workload]\ntty = 1\n');
  assert.deepEqual(err.message.split('\n'), [
    'invalid hac.toml (4 problems):',
    `  hac.toml:3:1: ${neither}`,
    "  hac.toml:4:9: hardware.cores = 9: must be an integer from 1 to 2 (this host's CPUs)",
    "  hac.toml:5:1: workload needs hardware.ref: [workload] says how ref's image runs",
    '  hac.toml:6:7: workload.tty = 1: must be true or false',
  ]);
});

test('errors: an invalid drive or ref still counts as set', () => {
  assert.equal(only('[spacecore]\nname = "x"\n[hardware]\ndrive = 5\n').line, 'hac.toml:4:9: hardware.drive = 5: must be a non-empty string (a path)');
  assert.equal(only('[spacecore]\nname = "x"\n[hardware]\nref = ""\n').line, 'hac.toml:4:7: hardware.ref = "": must be a non-empty string (an OCI image reference)');
});

const needsRef = "workload needs hardware.ref: [workload] says how ref's image runs";

test('errors: [workload] without ref, at its header (also next to a drive)', () => {
  const { line, issue } = only(`${head}\n [workload]\ntty = true\n`);
  assert.equal(line, `hac.toml:6:2: ${needsRef}`);
  assert.deepEqual(issue, { path: 'workload', message: needsRef, location: 'hac.toml:6:2' });
  assert.equal(only(`workload = { tty = true }\n${head}`).line, `hac.toml:1:12: ${needsRef}`);
  assert.equal(only(`workload.tty = true\n${head}`).line, `hac.toml:1:1: ${needsRef}`);
});

test('errors: [workload] made by a flag without ref names the flag', () => {
  assert.equal(only(head, { env: ['A=1'] }).line, `--env: ${needsRef}`);
  assert.equal(only(head, { tty: true }).line, `-t: ${needsRef}`);
  assert.equal(only(head, { command: ['ls'] }).line, `-- COMMAND: ${needsRef}`);
  // The file's own [workload] is where the problem is, even when a flag adds to it.
  assert.equal(only(`${head}[workload]\n`, { user: '0' }).line, `hac.toml:5:1: ${needsRef}`);
});

const refHead = '[spacecore]\nname = "demo"\n[hardware]\nref = "alpine"\n[workload]\n'; // 5 lines
const envRule = "must be a \"KEY=VALUE\" string, KEY of letters, digits and '_', not starting with a digit";
const nul = 'must be a string without NUL characters';

test('errors: entrypoint and command are arrays of strings; items are located one by one', () => {
  assert.equal(only(`${refHead}entrypoint = "/bin/sh"\n`).line, 'hac.toml:6:14: workload.entrypoint = "/bin/sh": must be an array of strings');
  const { line, issue } = only(`${refHead}entrypoint = ["/bin/sh",  1]\n`);
  assert.equal(line, 'hac.toml:6:27: workload.entrypoint[1] = 1: must be a string');
  assert.deepEqual(issue, { path: 'workload.entrypoint[1]', message: 'workload.entrypoint[1] = 1: must be a string', location: 'hac.toml:6:27', value: 1 });
  assert.equal(only(`${refHead}command = [\n  "ls",\n  ["-l"],\n]\n`).line, 'hac.toml:8:3: workload.command[1] = ["-l"]: must be a string');
  assert.equal(only(`${refHead}command = { a = 1 }\n`).line, 'hac.toml:6:11: workload.command = { a = 1 }: must be an array of strings');
  assert.equal(only(`${refHead}command = ["a\\u0000b"]\n`).line, `hac.toml:6:12: workload.command[0] = "a\\u0000b": ${nul}`);
});

test('errors: env items must be KEY=VALUE', () => {
  assert.equal(only(`${refHead}env = "A=1"\n`).line, 'hac.toml:6:7: workload.env = "A=1": must be an array of "KEY=VALUE" strings');
  assert.equal(only(`${refHead}env = ["1A=x"]\n`).line, `hac.toml:6:8: workload.env[0] = "1A=x": ${envRule}`);
  assert.equal(only(`${refHead}env = ["A=1", 'NOVALUE']\n`).line, `hac.toml:6:15: workload.env[1] = "NOVALUE": ${envRule}`);
  assert.equal(only(`${refHead}env = ["A-B=1"]\n`).line, `hac.toml:6:8: workload.env[0] = "A-B=1": ${envRule}`);
  assert.equal(only(`${refHead}env = ["=x"]\n`).line, `hac.toml:6:8: workload.env[0] = "=x": ${envRule}`);
  assert.equal(only(`${refHead}env = [true]\n`).line, `hac.toml:6:8: workload.env[0] = true: ${envRule}`);
  assert.equal(only(`${refHead}env = ["A=\\u0000"]\n`).line, `hac.toml:6:8: workload.env[0] = "A=\\u0000": ${nul}`);
  const err = fail(`${refHead}env = [\n  "OK=1",\n  "bad",   # comment\n  "2=x",\n]\n`);
  assert.deepEqual(err.details.map((d) => [d.location, d.path]), [
    ['hac.toml:8:3', 'workload.env[1]'],
    ['hac.toml:9:3', 'workload.env[2]'],
  ]);
});

test('errors: workdir is an absolute path, user a numeric uid[:gid], tty a boolean', () => {
  const abs = "must be an absolute path (starting with '/')";
  assert.equal(only(`${refHead}workdir = "srv"\n`).line, `hac.toml:6:11: workload.workdir = "srv": ${abs}`);
  assert.equal(only(`${refHead}workdir = ""\n`).line, `hac.toml:6:11: workload.workdir = "": ${abs}`);
  assert.equal(only(`${refHead}workdir = ["/srv"]\n`).line, `hac.toml:6:11: workload.workdir = ["/srv"]: ${abs}`);
  const userRule = 'must be a numeric "uid" or "uid:gid" (each from 0 to 4294967294)';
  for (const bad of ['"root"', '"1000:"', '":1000"', '"-1"', '"1:2:3"', '"1000:users"', '"4294967295"', '"0:4294967295"', '1000', '" 1"']) {
    assert.equal(only(`${refHead}user = ${bad}\n`).line, `hac.toml:6:8: workload.user = ${bad}: ${userRule}`, bad);
  }
  assert.equal(only(`${refHead}tty = "yes"\n`).line, 'hac.toml:6:7: workload.tty = "yes": must be true or false');
});

test('errors: pids_limit and memory_limit bounds and types', () => {
  const pids = 'must be an integer of at least 1';
  assert.equal(only(`${refHead}pids_limit = 0\n`).line, `hac.toml:6:14: workload.pids_limit = 0: ${pids}`);
  assert.equal(only(`${refHead}pids_limit = -5\n`).line, `hac.toml:6:14: workload.pids_limit = -5: ${pids}`);
  assert.equal(only(`${refHead}pids_limit = 10.0\n`).line, `hac.toml:6:14: workload.pids_limit = 10.0: ${pids}`);
  assert.equal(only(`${refHead}pids_limit = "10"\n`).line, `hac.toml:6:14: workload.pids_limit = "10": ${pids}`);
  const mem = 'must be an integer from 4 to hardware.memory (MiB)';
  assert.equal(only(`${refHead}memory_limit = 3\n`).line, `hac.toml:6:16: workload.memory_limit = 3: ${mem}`);
  assert.equal(only(`${refHead}memory_limit = 64.5\n`).line, `hac.toml:6:16: workload.memory_limit = 64.5: ${mem}`);
  assert.equal(only(`${refHead}memory_limit = "64M"\n`).line, `hac.toml:6:16: workload.memory_limit = "64M": ${mem}`);
});

test('errors: memory_limit above hardware.memory names the actual bound', () => {
  const { line, issue } = only('[spacecore]\nname = "x"\n[hardware]\nref = "alpine"\nmemory = 128\n[workload]\nmemory_limit = 129\n');
  assert.equal(line, 'hac.toml:7:16: workload.memory_limit = 129: must be an integer from 4 to 128 (MiB; hardware.memory)');
  assert.equal(issue.value, 129);
  // hardware.memory's default counts.
  assert.equal(only(`${refHead}memory_limit = 257\n`).line, 'hac.toml:6:16: workload.memory_limit = 257: must be an integer from 4 to 256 (MiB; hardware.memory)');
  // So does a --memory flag; the problem stays where memory_limit is written.
  assert.equal(only(`${refHead}memory_limit = 512\n`, { memoryMib: 256 }).line, 'hac.toml:6:16: workload.memory_limit = 512: must be an integer from 4 to 256 (MiB; hardware.memory)');
  // An invalid hardware.memory is reported alone: the limit cannot be judged against it.
  assert.equal(only('[spacecore]\nname = "x"\n[hardware]\nref = "a"\nmemory = 32\n[workload]\nmemory_limit = 100\n').line, 'hac.toml:5:10: hardware.memory = 32: must be an integer from 64 to 1048576 (MiB)');
});

test('errors: unknown keys in [workload] get suggestions, including other tools\' names', () => {
  assert.equal(only(`${refHead}environ = []\n`).line, 'hac.toml:6:1: unknown key "workload.environ"; did you mean "workload.env"?');
  assert.equal(only(`${refHead}cmd = ["ls"]\n`).line, 'hac.toml:6:1: unknown key "workload.cmd"; did you mean "workload.command"?');
  assert.equal(only(`${refHead}working_dir = "/"\n`).line, 'hac.toml:6:1: unknown key "workload.working_dir"; did you mean "workload.workdir"?');
  assert.equal(only(`${refHead}pid_limit = 5\n`).line, 'hac.toml:6:1: unknown key "workload.pid_limit"; did you mean "workload.pids_limit"?');
  assert.equal(only(`${refHead}image = "x"\n`).line, 'hac.toml:6:1: unknown key "workload.image"; did you mean "hardware.ref"?');
  assert.equal(
    only(`${refHead}gpu = true\n`).line,
    'hac.toml:6:1: unknown key "workload.gpu"; allowed in [workload]: entrypoint, command, env, workdir, user, tty, pids_limit, memory_limit',
  );
  assert.equal(only(`${head}image = "alpine"\n`).line, 'hac.toml:5:1: unknown key "hardware.image"; did you mean "hardware.ref"?');
});

test('errors: invalid workload flags name the flag; array items of a flag too', () => {
  assert.equal(only(refHead, { env: ['A=1', 'oops'] }).line, `--env: workload.env[1] = "oops": ${envRule}`);
  assert.equal(only(refHead, { workdir: 'rel' }).line, '--workdir: workload.workdir = "rel": must be an absolute path (starting with \'/\')');
  assert.equal(only(refHead, { user: 'nobody' }).line, '--user: workload.user = "nobody": must be a numeric "uid" or "uid:gid" (each from 0 to 4294967294)');
  assert.equal(only(refHead, { command: ['a\0b'] }).line, `-- COMMAND: workload.command[0] = "a\\u0000b": ${nul}`);
  assert.equal(only(head, { image: '' }).line, '--image: hardware.ref = "": must be a non-empty string (an OCI image reference)');
  // A flag replaces the file's array: the file's bad item is gone with it.
  assert.equal(parseHac(`${refHead}env = ["bad"]\n`, { file: 'hac.toml', hostCpus: 2, cwd: dir, overrides: { env: ['A=1'] } }).workload?.env?.[0], 'A=1');
});

/** The error of `specFromImageReference`. */
function runFail(ref: string, options: { name?: string; overrides?: HacOverrides } = {}): ConfigInvalidError {
  try {
    specFromImageReference(ref, { hostCpus: 2, cwd: dir, ...options });
  } catch (err) {
    assert.ok(err instanceof ConfigInvalidError, `expected ConfigInvalidError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected specFromImageReference to throw');
}

test('errors: specFromImageReference names IMAGE or the flag', () => {
  assert.equal(runFail('').message, 'IMAGE: hardware.ref = "": must be a non-empty string (an OCI image reference)');
  assert.deepEqual(runFail('').details, [{ path: 'hardware.ref', message: 'hardware.ref = "": must be a non-empty string (an OCI image reference)', location: 'IMAGE', value: '' }]);
  assert.equal(runFail('alpine', { name: '-x' }).details[0]?.location, '--name');
  assert.equal(runFail('alpine', { overrides: { image: '' } }).details[0]?.location, '--image');
  assert.deepEqual(runFail('alpine', { overrides: { cores: 3, env: ['x'], drive: 'missing.ext4' } }).message.split('\n'), [
    'invalid arguments (3 problems):',
    "  --cores: hardware.cores = 3: must be an integer from 1 to 2 (this host's CPUs)",
    `  --env: workload.env[0] = "x": ${envRule}`,
    `  --drive: hardware.drive = "missing.ext4": file not found (resolved to ${join(dir, 'missing.ext4')})`,
  ]);
});

test('errors: a kernel that is a device, not a regular file, and a drive that is a character device', () => {
  assert.equal(only(`${head}kernel = "/dev/zero"\n`).line, 'hac.toml:5:10: hardware.kernel = "/dev/zero": is not a regular file (resolved to /dev/zero)');
  assert.equal(only('[spacecore]\nname = "demo"\n[hardware]\ndrive = "/dev/null"\n').line, 'hac.toml:4:9: hardware.drive = "/dev/null": is neither a regular file nor a block device (resolved to /dev/null)');
});

test('errors: multicast MACs and loopback subnets', () => {
  assert.match(only(`${head}[network]\nmac = "01:00:5e:00:00:01"\n`).line, /^hac\.toml:6:7: network\.mac = "01:00:5e:00:00:01": must be a unicast MAC address/);
  assert.equal(only(`${head}[network]\nsubnet = "127.0.0.0/16"\n`).line, `hac.toml:6:10: network.subnet = "127.0.0.0/16": must not overlap 127.0.0.0/8 (the host's loopback)`);
});

test('errors: a name of hex digits only would read as a VM id, and is refused', () => {
  for (const name of ['cafe', '3f9c2a7d41b0', 'a']) {
    assert.match(only(`[spacecore]\nname = "${name}"\n[hardware]\ndrive = "root.ext4"\n`).line, /^hac\.toml:2:8: spacecore\.name = ".*": must not be hex digits only/);
  }
});
