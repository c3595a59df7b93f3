/** `[metadata]` in hac.toml: what it maps to, and every way it can be wrong, located and without showing a secret. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigInvalidError } from '../core/errors.js';
import { parseHac } from './index.js';
import { locateKeys } from './locator.js';

const dir = mkdtempSync(join(tmpdir(), 'hac-metadata-'));
writeFileSync(join(dir, 'root.ext4'), '');

const imageHead = '[spacecore]\nname = "web"\n[hardware]\nref = "docker.io/library/alpine:3"\n'; // 4 lines
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host';
const SECRET = 'S3CR3T-VALUE-never-shown';

function parse(text: string) {
  return parseHac(text, { file: 'hac.toml', hostCpus: 2, cwd: dir });
}

function fail(text: string): ConfigInvalidError {
  try {
    parse(text);
  } catch (err) {
    assert.ok(err instanceof ConfigInvalidError, String(err));
    return err;
  }
  assert.fail('expected a config error');
}

/** The error, checked to show the secret nowhere: not in its message, not in any detail. */
function failWithoutSecret(text: string): ConfigInvalidError {
  const err = fail(text);
  assert.ok(!err.message.includes(SECRET), err.message);
  assert.ok(!JSON.stringify(err.details).includes(SECRET), JSON.stringify(err.details));
  return err;
}

test('metadata: the issue example maps to the spec, with default mode and owner', () => {
  const spec = parse(`${imageHead}[metadata]
values = { region = "eu-1", role = "web" }
secrets = { api_key = "s3cr3t" }
ssh_authorized_keys = ["${KEY}"]

[[metadata.files]]
path = "/etc/app/app.conf"
mode = "0640"
content = "listen = 8080\\n"

[[metadata.files]]
path = "/srv/data.txt"
owner = "1000"
content = "x"
`);
  assert.deepEqual(spec.metadata, {
    values: { region: 'eu-1', role: 'web' },
    secrets: { api_key: 's3cr3t' },
    sshAuthorizedKeys: [KEY],
    files: [
      { path: '/etc/app/app.conf', mode: '0640', owner: '0:0', content: 'listen = 8080\n' },
      { path: '/srv/data.txt', mode: '0644', owner: '1000', content: 'x' },
    ],
  });
  assert.equal(parse(imageHead).metadata, undefined, 'no [metadata], no metadata');
});

test('metadata on a drive or kernel-only VM is an error at the [metadata] table', () => {
  const drive = fail('[spacecore]\nname = "drv"\n[hardware]\ndrive = "root.ext4"\n[metadata]\nvalues = { a = "b" }\n');
  assert.equal(drive.message, 'hac.toml:5:1: metadata needs an image VM (hardware.ref without hardware.drive): its agent delivers the metadata, and a drive or kernel-only VM runs none');
  assert.equal(drive.details[0]?.path, 'metadata');
  writeFileSync(join(dir, 'vmlinux'), '');
  const kernel = fail('[spacecore]\nname = "k"\n[hardware]\nkernel = "vmlinux"\n[metadata]\n');
  assert.match(kernel.message, /^hac\.toml:5:1: metadata needs an image VM/);
  const both = fail(`metadata = { values = { a = "b" } }\n[spacecore]\nname = "both-vm"\n[hardware]\ndrive = "root.ext4"\nref = "alpine:3"\n`);
  assert.match(both.message, /metadata needs an image VM/, 'an image as an extra disk runs no agent either');
});

test('metadata: each [[metadata.files]] problem is located at its own line', () => {
  const err = fail(`${imageHead}[[metadata.files]]
path = "/etc/a"
content = "ok"
[[metadata.files]]
path = "etc/relative"
mode = "0999"
owner = "root"
[[metadata.files]]
path = "/proc/self/x"
content = "y"
`);
  assert.deepEqual(
    err.details.map((d) => `${d.location}: ${d.path}`),
    [
      'hac.toml:8:1: metadata.files[1].content',
      'hac.toml:9:8: metadata.files[1].path',
      'hac.toml:10:8: metadata.files[1].mode',
      'hac.toml:11:9: metadata.files[1].owner',
      'hac.toml:13:8: metadata.files[2].path',
    ],
  );
  assert.match(err.message, /metadata\.files\[2\]\.path = "\/proc\/self\/x": must not be under \/proc, \/sys or \/dev/);
});

test('metadata: paths must be clean and distinct, and the SSH keys own authorized_keys', () => {
  for (const path of ['/etc/../x', '/etc//x', '/etc/x/', '/', '/a/./b']) {
    assert.match(fail(`${imageHead}[[metadata.files]]\npath = "${path}"\ncontent = ""\n`).message, /metadata\.files\[0\]\.path = .*must be (normalised|an absolute path)/, path);
  }
  const dup = fail(`${imageHead}[[metadata.files]]\npath = "/a"\ncontent = ""\n[[metadata.files]]\npath = "/a"\ncontent = ""\n`);
  assert.equal(dup.message, 'hac.toml:9:8: metadata.files[1].path = "/a": is also the path of metadata.files[0]');
  const keys = fail(`${imageHead}[metadata]\nssh_authorized_keys = ["${KEY}"]\n[[metadata.files]]\npath = "/root/.ssh/authorized_keys"\ncontent = ""\n`);
  assert.match(keys.message, /metadata\.files\[0\]\.path = "\/root\/\.ssh\/authorized_keys": is where metadata\.ssh_authorized_keys go/);
});

test('metadata: key names and SSH key lines are checked', () => {
  const err = fail(`${imageHead}[metadata]\nvalues = { "has space" = "x", _hidden = "y", ok = 1 }\nssh_authorized_keys = ["not a key", "${KEY}\\nssh-rsa AAAA"]\n`);
  const lines = err.message.split('\n').slice(1).map((l) => l.trim());
  assert.deepEqual(lines, [
    `hac.toml:6:26: metadata.values."has space" = "x": key names must be 1-128 characters of letters, digits, '_', '.' and '-', starting with a letter or digit`,
    `hac.toml:6:41: metadata.values._hidden = "y": key names must be 1-128 characters of letters, digits, '_', '.' and '-', starting with a letter or digit`,
    'hac.toml:6:51: metadata.values.ok = 1: must be a string',
    'hac.toml:7:24: metadata.ssh_authorized_keys[0] = "not a key": must be one public key line, e.g. "ssh-ed25519 AAAA... user@host"',
    `hac.toml:7:37: metadata.ssh_authorized_keys[1] = ${JSON.stringify(`${KEY}\nssh-rsa AAAA`).slice(0, 59)}…: must be one public key line, e.g. "ssh-ed25519 AAAA... user@host"`,
  ]);
});

test('metadata: no error shows a secret, whatever is wrong with it', () => {
  const badKey = failWithoutSecret(`${imageHead}[metadata]\nsecrets = { "bad key" = "${SECRET}" }\n`);
  assert.equal(badKey.message, `hac.toml:6:25: metadata.secrets."bad key" = <secret>: key names must be 1-128 characters of letters, digits, '_', '.' and '-', starting with a letter or digit`);
  const notString = failWithoutSecret(`${imageHead}[metadata]\nsecrets = { pin = 123456 }\n`);
  assert.equal(notString.message, 'hac.toml:6:19: metadata.secrets.pin = <secret>: must be a string');
  assert.ok(!notString.message.includes('123456'));
  const both = failWithoutSecret(`${imageHead}[metadata]\nvalues = { token = "plain" }\nsecrets = { token = "${SECRET}" }\n`);
  assert.equal(both.message, 'hac.toml:7:21: metadata.secrets.token = <secret>: is also in metadata.values: a key is either a value or a secret');
  const notTable = failWithoutSecret(`${imageHead}[metadata]\nsecrets = "${SECRET}"\n`);
  assert.equal(notTable.message, 'hac.toml:6:11: metadata.secrets = <secret>: must be a table of key = "value" strings');
});

test('metadata: 64 KiB of values and secrets together, counted in UTF-8 bytes with key names', () => {
  const fits = 'x'.repeat(64 * 1024 - 2); // with the key names a and b: exactly 64 KiB
  assert.equal(parse(`${imageHead}[metadata]\nvalues = { a = "${fits}" }\nsecrets = { b = "" }\n`).metadata?.values['a'], fits);
  const over = failWithoutSecret(`${imageHead}[metadata]\nvalues = { a = "${fits}" }\nsecrets = { b = "${SECRET}" }\n`);
  assert.equal(over.message, `hac.toml:5:1: metadata values and secrets would hold ${64 * 1024 + SECRET.length} bytes (key names and values, UTF-8); at most 65536 (64 KiB) are allowed`);
  const multibyte = fail(`${imageHead}[metadata]\nvalues = { a = "${'é'.repeat(32 * 1024)}" }\n`);
  assert.match(multibyte.message, /would hold 65537 bytes/);
});

test('metadata: 1 MiB of files and SSH keys, and at most 256 files', () => {
  const big = 'y'.repeat(1024 * 1024 - '/big'.length);
  assert.equal(parse(`${imageHead}[[metadata.files]]\npath = "/big"\ncontent = "${big}"\n`).metadata?.files[0]?.content.length, big.length);
  const over = fail(`${imageHead}[metadata]\nssh_authorized_keys = ["${KEY}"]\n[[metadata.files]]\npath = "/big"\ncontent = "${big}"\n`);
  assert.equal(over.message, `hac.toml:5:1: metadata files and SSH keys hold ${1024 * 1024 + KEY.length + 1} bytes (paths, contents and key lines, UTF-8); at most 1048576 (1 MiB) are allowed`);
  const many = Array.from({ length: 257 }, (_, i) => `[[metadata.files]]\npath = "/f${i}"\ncontent = ""\n`).join('');
  assert.match(fail(`${imageHead}${many}`).message, /metadata 257 files; at most 256 are allowed/);
});

test('locator: the tables of an array of tables are items of it', () => {
  const at = locateKeys('[[a.b]]\nx = 1\n[[a.b]]\nx = 2\n[c]\ny = 3\n[[a.b]]\n  x = 4\n');
  assert.deepEqual([0, 1, 2].map((i) => at.value(`a.b[${i}]`)), [{ line: 1, column: 1 }, { line: 3, column: 1 }, { line: 7, column: 1 }]);
  assert.deepEqual([0, 1, 2].map((i) => at.key(`a.b[${i}].x`)), [{ line: 2, column: 1 }, { line: 4, column: 1 }, { line: 8, column: 3 }]);
  assert.deepEqual(at.key('c.y'), { line: 6, column: 1 });
});
