/**
 * Metadata files in a hostile image: each is written with its mode and owner, and no symlink,
 * `..` or loop the image holds gets a write outside the rootfs. Runs as root (chown needs it).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TtrpcError } from '../ttrpc/index.js';
import { writeMetadataFiles } from './metadata-files.js';
import type { GuestFile } from './protocol/messages.js';

const asRoot = process.getuid?.() === 0;
let dir: string;
let rootfs: string;
/** A directory beside the rootfs that stands for the guest's own system: nothing may land there. */
let outside: string;

function file(path: string, content = 'data', mode = 0o644, uid = 0, gid = 0): GuestFile {
  return { path, mode, uid, gid, content: Buffer.from(content) };
}

function refusal(pattern: RegExp) {
  return (err: unknown) => err instanceof TtrpcError && pattern.test(err.message);
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-metafiles-'));
  rootfs = join(dir, 'rootfs');
  outside = join(dir, 'outside');
  mkdirSync(join(rootfs, 'etc'), { recursive: true });
  mkdirSync(outside);
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('files land with their mode and owner; missing directories are made, root-owned 0755', { skip: !asRoot && 'needs root (chown)' }, async () => {
  await writeMetadataFiles(rootfs, [file('/etc/app/app.conf', 'listen = 8080\n', 0o640, 1000, 1001), file('/srv/x/y/z.txt', 'z', 0o600, 7, 7)], []);
  const conf = statSync(join(rootfs, 'etc/app/app.conf'));
  assert.equal(readFileSync(join(rootfs, 'etc/app/app.conf'), 'utf8'), 'listen = 8080\n');
  assert.deepEqual([conf.mode & 0o7777, conf.uid, conf.gid], [0o640, 1000, 1001]);
  const made = statSync(join(rootfs, 'srv/x/y'));
  assert.deepEqual([made.mode & 0o7777, made.uid], [0o755, 0]);
  assert.deepEqual(readdirSync(join(rootfs, 'etc/app')), ['app.conf'], 'no temporary file is left');
});

test('SSH keys replace /root/.ssh/authorized_keys (0600), in a 0700 .ssh', { skip: !asRoot && 'needs root (chown)' }, async () => {
  mkdirSync(join(rootfs, 'root/.ssh'), { recursive: true, mode: 0o700 });
  writeFileSync(join(rootfs, 'root/.ssh/authorized_keys'), 'ssh-rsa AAAA image-key\n');
  await writeMetadataFiles(rootfs, [], ['ssh-ed25519 AAAA one', 'ssh-ed25519 BBBB two']);
  const keys = join(rootfs, 'root/.ssh/authorized_keys');
  assert.equal(readFileSync(keys, 'utf8'), 'ssh-ed25519 AAAA one\nssh-ed25519 BBBB two\n');
  assert.equal(statSync(keys).mode & 0o7777, 0o600);
  const fresh = join(dir, 'fresh');
  mkdirSync(fresh);
  await writeMetadataFiles(fresh, [], ['ssh-ed25519 AAAA one']);
  assert.deepEqual([statSync(join(fresh, 'root')).mode & 0o777, statSync(join(fresh, 'root/.ssh')).mode & 0o777], [0o700, 0o700]);
});

test('symlinks in the image resolve inside the rootfs: absolute, relative with .., and one replaced at the end', { skip: !asRoot && 'needs root (chown)' }, async () => {
  // Every escape aims at "outside", in this test's own directory: code that follows one harms nothing else.
  symlinkSync(outside, join(rootfs, 'abs')); // /abs -> the host path of "outside"
  symlinkSync('../../outside', join(rootfs, 'etc/up')); // from <rootfs>/etc, one level past the rootfs
  symlinkSync('/abs', join(rootfs, 'etc/chain')); // a symlink to a symlink (dangling outside the rootfs)
  writeFileSync(join(outside, 'victim'), 'untouched');
  symlinkSync(join(outside, 'victim'), join(rootfs, 'etc/final'));
  await writeMetadataFiles(rootfs, [file('/abs/a.txt'), file('/etc/up/b.txt'), file('/etc/chain/c.txt'), file('/etc/final', 'new')], []);
  assert.deepEqual(readdirSync(outside), ['victim'], 'nothing was written outside the rootfs');
  assert.equal(readFileSync(join(outside, 'victim'), 'utf8'), 'untouched');
  assert.equal(readFileSync(join(rootfs, dir.slice(1), 'outside/a.txt'), 'utf8'), 'data', '/abs resolved as the container sees it');
  assert.equal(readFileSync(join(rootfs, 'outside/b.txt'), 'utf8'), 'data', '.. stops at the root');
  assert.equal(readFileSync(join(rootfs, dir.slice(1), 'outside/c.txt'), 'utf8'), 'data', 'chained symlinks too');
  assert.ok(!lstatSync(join(rootfs, 'etc/final')).isSymbolicLink(), 'the symlink itself was replaced');
  assert.equal(readFileSync(join(rootfs, 'etc/final'), 'utf8'), 'new');
});

test('what cannot be written is refused by path: a file on the way, a directory at the end, a loop, a bad path or mode', async () => {
  writeFileSync(join(rootfs, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
  mkdirSync(join(rootfs, 'etc/dir'), { recursive: true });
  symlinkSync('loop2', join(rootfs, 'loop1'));
  symlinkSync('loop1', join(rootfs, 'loop2'));
  await assert.rejects(writeMetadataFiles(rootfs, [file('/etc/passwd/x')], []), refusal(/^cannot write metadata file \/etc\/passwd\/x: \/etc\/passwd is not a directory in the image$/));
  await assert.rejects(writeMetadataFiles(rootfs, [file('/etc/dir')], []), refusal(/^cannot write metadata file \/etc\/dir: it is a directory in the image$/));
  await assert.rejects(writeMetadataFiles(rootfs, [file('/loop1/x')], []), refusal(/more than 255 symlinks on the way \(a loop\?\)/));
  await assert.rejects(writeMetadataFiles(rootfs, [file('/etc/../x')], []), refusal(/must be normalised/));
  await assert.rejects(writeMetadataFiles(rootfs, [file('relative')], []), refusal(/must be an absolute path/));
  await assert.rejects(writeMetadataFiles(rootfs, [file('/etc/x', 'x', 0o4755)], []), refusal(/mode 4755 has bits beyond 0777/));
  await assert.rejects(writeMetadataFiles(rootfs, Array.from({ length: 257 }, (_, i) => file(`/f${i}`)), []), refusal(/257 files/));
  await assert.rejects(writeMetadataFiles(rootfs, [file('/big', 'x'.repeat(1024 * 1024))], []), refusal(/at most 256 files of 1048576 bytes/));
  assert.equal(readFileSync(join(rootfs, 'etc/passwd'), 'utf8'), 'root:x:0:0::/root:/bin/sh\n');
});
