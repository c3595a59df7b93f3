import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigInvalidError, ErrorCodes, type ValidationIssue } from '../core/errors.js';
import { parseHac, type HacOverrides } from './index.js';

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
  assert.equal(only(`${head}[network]\n`).line, 'hac.toml:5:1: unknown table "network"; allowed at the top level: spacecore, hardware, hypervisor');
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
  const { line, issue } = only('[spacecore]\nname = "x"\n\n  [hardware]\ncores = 1\n');
  assert.equal(line, 'hac.toml:4:3: missing required key "hardware.drive" in the [hardware] table');
  assert.deepEqual(issue, { path: 'hardware.drive', message: 'missing required key "hardware.drive" in the [hardware] table', location: 'hac.toml:4:3' });
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
