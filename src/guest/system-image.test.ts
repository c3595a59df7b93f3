import { test } from 'node:test';
import assert from 'node:assert/strict';
import { access } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCommand } from '../system/command.js';
import { agentInitScriptPath, ensureSystemImage, SYSTEM_IMAGE_INFO_PATH } from './system-image.js';
import { sharedLibraries } from './system-image-inputs.js';

async function debugfs(image: string, request: string): Promise<string> {
  return (await runCommand('debugfs', ['-R', request, image], { timeoutMs: 20_000 })).stdout;
}

const hasCrun = await new Promise<boolean>((resolve) => access('/usr/bin/crun', (err) => resolve(!err)));

async function sha256(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

/** Small inputs (script "node" and "crun", real busybox) so builds take a fraction of a second. */
async function fakeInputs(dir: string, agentText: string): Promise<{ nodeBinary: string; crunBinary: string; socatBinary: string; agentBundle: string }> {
  await mkdir(dir, { recursive: true });
  const out = { nodeBinary: join(dir, 'node'), crunBinary: join(dir, 'crun'), socatBinary: join(dir, 'socat'), agentBundle: join(dir, 'agent.js') };
  await writeFile(out.socatBinary, '#!/bin/sh\necho fake socat\n', { mode: 0o755 });
  await writeFile(out.nodeBinary, '#!/bin/sh\necho fake node\n', { mode: 0o755 });
  await writeFile(out.crunBinary, '#!/bin/sh\necho fake crun\n', { mode: 0o755 });
  await writeFile(out.agentBundle, agentText);
  await writeFile(join(dir, 'exec-helper'), '#!/bin/sh\necho fake helper\n', { mode: 0o755 });
  return out;
}

test('a real system image: node + libs, crun + libs, busybox links, init, agent; concurrent calls build once; cached after', { skip: !hasCrun && 'crun is not installed' }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-sysimg-'));
  try {
    const agentBundle = join(dir, 'agent.js');
    await writeFile(agentBundle, 'console.log("test agent");\n');
    await writeFile(join(dir, 'exec-helper'), '#!/bin/sh\necho fake helper\n', { mode: 0o755 });
    const cacheDir = join(dir, 'cache');
    const builds: string[] = [];
    const options = { cacheDir, agentBundle, onBuild: (key: string) => builds.push(key) };

    const [a, b] = await Promise.all([ensureSystemImage(options), ensureSystemImage(options)]);
    assert.equal(builds.length, 1, 'two concurrent callers share one build');
    assert.deepEqual(a, b);
    assert.equal(a.built, true);
    assert.equal(a.path, join(cacheDir, `system-${a.key}.ext4`));
    assert.equal((await stat(a.path)).size, a.sizeBytes);
    assert.equal((await stat(a.path)).mode & 0o777, 0o444);
    assert.deepEqual(await readdir(cacheDir), [`system-${a.key}.ext4`], 'no staging or temp files left');
    await runCommand('e2fsck', ['-fn', a.path], { timeoutMs: 30_000 });

    const usrBin = await debugfs(a.path, 'ls -l /usr/bin');
    assert.match(usrBin, /100755 .* node\n/);
    assert.match(usrBin, /100755 .* crun\n/);
    for (const lib of [...(await sharedLibraries(process.execPath)), ...(await sharedLibraries('/usr/bin/crun'))]) {
      assert.match(await debugfs(a.path, `stat ${lib}`), /Type: regular/, `${lib} is in the image`);
    }
    assert.match(await debugfs(a.path, 'stat /usr/bin/node'), new RegExp(`Size: ${(await stat(process.execPath)).size}\\b`));
    assert.match(await debugfs(a.path, 'stat /bin/sh'), /Fast link dest: "busybox"/);
    assert.match(await debugfs(a.path, 'stat /bin/poweroff'), /Fast link dest: "busybox"/);
    assert.equal(await debugfs(a.path, 'cat /sbin/init'), await readFile(agentInitScriptPath(), 'utf8'));
    assert.match(await debugfs(a.path, 'stat /sbin/init'), /Mode:\s+0755/);
    assert.equal(await debugfs(a.path, 'cat /agent/agent.js'), 'console.log("test agent");\n');
    assert.match(await debugfs(a.path, 'cat /etc/passwd'), /^root:x:0:0:.*\nnobody:x:65534:/);
    const root = await debugfs(a.path, 'ls -l /');
    for (const d of ['proc', 'sys', 'dev', 'run', 'tmp', 'mnt', 'agent', 'etc', 'lib64']) assert.match(root, new RegExp(` ${d}\\n`));
    assert.match(await debugfs(a.path, 'ls /sys/fs'), /cgroup/);
    assert.match(await debugfs(a.path, 'ls /run/hc'), /rootfs/);
    const info = JSON.parse(await debugfs(a.path, `cat ${SYSTEM_IMAGE_INFO_PATH}`)) as { key: string; files: Record<string, string> };
    assert.equal(info.key, a.key);
    assert.equal(info.files['/usr/bin/node'], await sha256(process.execPath));

    const again = await ensureSystemImage(options);
    assert.deepEqual({ ...again, buildMs: 0 }, { ...a, built: false, buildMs: 0 });
    assert.equal(builds.length, 1, 'a cache hit does not build');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the same inputs give byte-identical images (fixed UUID, pinned inode times)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-sysimg-'));
  try {
    const fake = await fakeInputs(join(dir, 'in'), 'console.log(1);\n');
    const one = await ensureSystemImage({ ...fake, cacheDir: join(dir, 'c1') });
    // Later, from a fresh staging tree with different times, into another cache.
    await new Promise((r) => setTimeout(r, 1100));
    await utimes(fake.agentBundle, new Date(), new Date());
    const two = await ensureSystemImage({ ...fake, cacheDir: join(dir, 'c2') });
    assert.equal(one.key, two.key);
    assert.equal(await sha256(one.path), await sha256(two.path));
    assert.match(await debugfs(one.path, 'stat /agent/agent.js'), /ctime: 0x00000000:00000000/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a build keeps the newest two system images and removes stale temp files', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-sysimg-'));
  try {
    const cacheDir = join(dir, 'cache');
    await mkdir(cacheDir);
    const stale = join(cacheDir, '.system-stage-123-deadbeef');
    await mkdir(stale);
    await utimes(stale, new Date(0), new Date(0));
    await writeFile(join(cacheDir, 'unrelated.ext4'), 'keep me');

    const keys: string[] = [];
    for (const n of [1, 2, 3]) {
      const fake = await fakeInputs(join(dir, `in${n}`), `console.log(${n});\n`);
      const image = await ensureSystemImage({ ...fake, cacheDir });
      keys.push(image.key);
      // mtime orders "recently used"; make it strictly increasing without sleeping.
      await utimes(image.path, new Date(n * 1000_000), new Date(n * 1000_000));
    }
    assert.equal(new Set(keys).size, 3);
    assert.deepEqual((await readdir(cacheDir)).sort(), [`system-${keys[1]}.ext4`, `system-${keys[2]}.ext4`, 'unrelated.ext4'].sort());

    // A cache hit on the older image makes it the most recently used, so the next build keeps it.
    const fake2 = await fakeInputs(join(dir, 'in2'), 'console.log(2);\n');
    assert.equal((await ensureSystemImage({ ...fake2, cacheDir })).built, false);
    const fake4 = await fakeInputs(join(dir, 'in4'), 'console.log(4);\n');
    const fourth = await ensureSystemImage({ ...fake4, cacheDir });
    assert.deepEqual((await readdir(cacheDir)).sort(), [`system-${keys[1]}.ext4`, `system-${fourth.key}.ext4`, 'unrelated.ext4'].sort());
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("the image's modes do not depend on the builder's umask (the daemon runs with umask 077)", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hc-sysimg-'));
  const previous = process.umask(0o077);
  try {
    const fake = await fakeInputs(join(dir, 'in'), 'console.log(1);\n');
    const built = await ensureSystemImage({ ...fake, cacheDir: join(dir, 'c') });
    for (const [path, mode] of [['/', '0755'], ['/etc', '0755'], ['/usr/bin', '0755'], ['/etc/passwd', '0644'], ['/etc/hosts', '0644'], [SYSTEM_IMAGE_INFO_PATH, '0644'], ['/tmp', '01777'], ['/root', '0700']] as const) {
      assert.match(await debugfs(built.path, `stat ${path}`), new RegExp(`Mode:\\s+${mode}\\b`), `${path} is ${mode}`);
    }
  } finally {
    process.umask(previous);
    await rm(dir, { recursive: true, force: true });
  }
});
