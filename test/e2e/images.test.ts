/**
 * Images against real parts: a real docker-registry on 127.0.0.1, images built in code and pushed,
 * pulled by a real hypercored, turned into ext4, booted as a VM disk and read from the guest.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Image } from '../../src/core/image.js';
import { buildDemoRootfs, DEMO_MARKER } from '../../src/guest/demo-rootfs.js';
import { RegistryClient } from '../../src/images/registry/client.js';
import { parseReference } from '../../src/images/registry/reference.js';
import { startRegistry, type RegistryProcess } from '../../src/images/registry/testing/registry-process.js';
import { buildImage, buildIndex, buildLayer, busyboxLayerEntries, writeDockerSaveTar, writeOciLayoutTar, writeTar, type BuiltBlob, type BuiltImage, type LayerEntry } from '../../src/images/testing/oci-builder.js';
import { lastLine, sleep, TestDaemon, waitFor } from './harness.js';

const daemon = new TestDaemon('hc-e2e-img-');
let registry: RegistryProcess;
let client: RegistryClient;
let image: BuiltImage;

const baseLayer: LayerEntry[] = [
  { type: 'dir', path: 'bin' },
  { type: 'file', path: 'bin/busybox', content: readFileSync('/bin/busybox'), mode: 0o755 },
  { type: 'symlink', path: 'bin/sh', target: 'busybox' },
  { type: 'dir', path: 'etc' },
  { type: 'file', path: 'etc/os-release', content: 'NAME="Hypercore test image"\nID=hctest\n' },
  { type: 'file', path: 'etc/removeme', content: 'lower layer\n' },
  { type: 'dir', path: 'opq' },
  { type: 'file', path: 'opq/old', content: 'hidden by an opaque marker\n' },
  { type: 'file', path: 'usr/bin/setuid-tool', content: '#!/bin/sh\n', mode: 0o4755 },
  { type: 'hardlink', path: 'etc/os-release.link', target: 'etc/os-release' },
];
const topLayer: LayerEntry[] = [
  { type: 'whiteout', path: 'etc/removeme' },
  { type: 'opaque', path: 'opq' },
  { type: 'file', path: 'opq/new', content: 'added above the opaque marker\n' },
  { type: 'file', path: 'etc/hc-layer2', content: 'from layer two\n' },
];

async function push(repo: string, tag: string, built: BuiltImage, index?: BuiltBlob): Promise<void> {
  const ref = parseReference(`${registry.host}/${repo}:${tag}`);
  for (const b of [...built.layers, built.config, built.manifest]) {
    if (b === built.manifest) continue;
    await client.pushBlob(ref, b.digest, b.bytes);
  }
  await client.pushManifest(index ? parseReference(`${registry.host}/${repo}@${built.manifest.digest}`) : ref, built.manifest.mediaType, built.manifest.bytes);
  if (index) await client.pushManifest(ref, index.mediaType, index.bytes);
}

function cli(args: string[]): { code: number; stdout: string; stderr: string } {
  return daemon.cli(args);
}

function images(): Image[] {
  const r = cli(['image', 'ls', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Image[];
}

function blockImage(digest: string): string {
  return join(daemon.root, 'images', 'blocks', `${digest.slice(7)}.ext4`);
}

function debugfs(imagePath: string, request: string): string {
  return execFileSync('debugfs', ['-R', request, imagePath], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

before(async () => {
  registry = await startRegistry();
  client = new RegistryClient({});
  image = buildImage([await buildLayer(baseLayer), await buildLayer(topLayer)]);
  await push('hc/test', 'v1', image);
  await daemon.start();
});

after(async () => {
  await daemon.cleanup();
  await client?.close();
  await registry?.stop();
});

test('pull verifies and stores an image and builds an ext4 with OCI layer semantics applied', () => {
  const ref = `${registry.host}/hc/test:v1`;
  const r = cli(['image', 'pull', ref]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(lastLine(r.stdout), `${ref}@${image.manifest.digest}`);
  assert.match(r.stderr, /downloading/, 'progress is shown');
  const [stored] = images();
  assert.equal(stored?.digest, image.manifest.digest);
  assert.equal(stored?.layers.length, 2);
  const ext4 = blockImage(image.manifest.digest);
  assert.ok(existsSync(ext4));
  assert.equal(debugfs(ext4, 'cat /etc/hc-layer2'), 'from layer two\n');
  assert.equal(debugfs(ext4, 'cat /opq/new'), 'added above the opaque marker\n');
  assert.match(debugfs(ext4, 'ls -l /opq'), /new/);
  assert.doesNotMatch(debugfs(ext4, 'ls -l /opq'), /\bold\b/, 'the opaque marker hid the lower directory');
  assert.doesNotMatch(debugfs(ext4, 'ls -l /etc'), /removeme/, 'the whiteout removed the lower file');
  assert.match(debugfs(ext4, 'stat /usr/bin/setuid-tool'), /Mode:\s+04755/);
  const links = debugfs(ext4, 'stat /etc/os-release');
  assert.match(links, /Links: 2/, 'the hardlink is a hardlink');
});

test('a multi-platform index: the host platform by default, another with --platform', async () => {
  const arm = buildImage([await buildLayer([{ type: 'file', path: 'arch', content: 'arm64\n' }])], { architecture: 'arm64' });
  const amd = buildImage([await buildLayer([{ type: 'file', path: 'arch', content: 'amd64\n' }])]);
  const index = buildIndex([{ image: amd, os: 'linux', architecture: 'amd64' }, { image: arm, os: 'linux', architecture: 'arm64', variant: 'v8' }]);
  await push('hc/multi', 'x', arm);
  await push('hc/multi', 'x', amd, index);
  const ref = `${registry.host}/hc/multi:x`;
  const amdPull = cli(['image', 'pull', ref]);
  assert.equal(amdPull.code, 0, amdPull.stderr);
  assert.equal(lastLine(amdPull.stdout), `${ref}@${amd.manifest.digest}`);
  const armPull = cli(['image', 'pull', '--platform', 'linux/arm64', ref]);
  assert.equal(armPull.code, 0, armPull.stderr);
  assert.equal(lastLine(armPull.stdout), `${ref}@${arm.manifest.digest}`);
  const missing = cli(['image', 'pull', '--platform', 'linux/s390x', ref]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no image for linux\/s390x; available: linux\/amd64, linux\/arm64\/v8/);
});

test('a VM boots with the image as a copy-on-write disk and the guest reads the image', async () => {
  const drive = join(daemon.dir, 'rootfs.ext4');
  await buildDemoRootfs({
    output: drive,
    files: { '/etc/rc.local': '#!/bin/sh\nmkdir -p /mnt/img && mount -t ext4 /dev/vdb /mnt/img && echo "image says: $(cat /mnt/img/etc/hc-layer2)" && echo scratch > /mnt/img/written-by-guest && echo "image has: $(ls /mnt/img/opq)"\n' },
  });
  const hac = join(daemon.dir, 'img-vm.toml');
  writeFileSync(hac, `[spacecore]\nname = "imgvm"\n[hardware]\nmemory = 192\ndrive = "rootfs.ext4"\nref = "${registry.host}/hc/test:v1"\n[hypervisor]\nprovider = "qemu"\n[network]\nmode = "none"\n`);
  const spawn = cli(['spawn', '--hac', hac]);
  assert.equal(spawn.code, 0, `${spawn.stderr}\n${daemon.log()}`);
  const id = lastLine(spawn.stdout);
  const vm = JSON.parse(cli(['inspect', '--json', id]).stdout) as { disks: { path: string; format: string }[]; imageDigest: string };
  assert.equal(vm.imageDigest, image.manifest.digest);
  assert.equal(vm.disks[0]?.format, 'qcow2');
  const logs = await waitFor('the guest to read the image disk', 90_000, () => {
    const out = cli(['logs', id]).stdout;
    return out.includes('image has:') ? out : undefined;
  });
  assert.ok(logs.includes(DEMO_MARKER));
  assert.match(logs, /image says: from layer two/);
  assert.match(logs, /image has: new/);
  // The guest wrote through its overlay: the shared block image is unchanged.
  assert.doesNotMatch(debugfs(blockImage(image.manifest.digest), 'ls /'), /written-by-guest/);

  const busy = cli(['image', 'rm', `${registry.host}/hc/test:v1`]);
  assert.equal(busy.code, 1);
  assert.match(busy.stderr, /is used by VM\(s\) imgvm.*HC_IMAGE_IN_USE/);
  // The overlay hypercored wrote (not qemu-img) is a sound qcow2 after QEMU wrote to it. It has lazy
  // refcounts, so a VMM that did not close it cleanly leaves it marked dirty with refcounts to
  // rebuild (as QEMU does on its next open): the repair must succeed, and leave nothing to fix.
  assert.equal(cli(['stop', id]).code, 0);
  // `stop` returns once QEMU's main thread is gone (a zombie); under load its other threads may
  // still be closing the image for a moment, holding its lock. A lock still held after 10 s fails.
  let repair = spawnSync('qemu-img', ['check', '-r', 'all', vm.disks[0]!.path], { encoding: 'utf8' });
  for (const until = Date.now() + 10_000; repair.status !== 0 && /Failed to get "write" lock/.test(repair.stderr) && Date.now() < until; ) {
    await sleep(200);
    repair = spawnSync('qemu-img', ['check', '-r', 'all', vm.disks[0]!.path], { encoding: 'utf8' });
  }
  assert.equal(repair.status, 0, `${repair.stdout}${repair.stderr}`);
  const check = spawnSync('qemu-img', ['check', vm.disks[0]!.path], { encoding: 'utf8' });
  assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
  assert.match(check.stdout, /No errors were found/);
  assert.ok(Number(/^(\d+)\/\d+ = /m.exec(check.stdout)?.[1]) > 0, `the guest wrote into the overlay:\n${check.stdout}`);
  assert.equal(cli(['rm', '-f', id]).code, 0);
  assert.equal(existsSync(vm.disks[0]!.path), false, "the VM's overlay is removed with it");
  assert.deepEqual(daemon.vmDirs(), []);
});

test('image rm and prune remove the image, its blobs and its block image', () => {
  const ref = `${registry.host}/hc/test:v1`;
  assert.equal(cli(['image', 'rm', ref]).code, 0);
  assert.ok(!images().some((i) => i.reference === ref));
  const prune = cli(['image', 'prune', '--all']);
  assert.equal(prune.code, 0, prune.stderr);
  assert.equal(existsSync(blockImage(image.manifest.digest)), false);
  assert.equal(existsSync(join(daemon.root, 'images', 'blobs', 'sha256', image.layers[0]!.digest.slice(7))), false);
  assert.deepEqual(images(), []);
});

test('import reads an OCI layout tar and a docker save tar', async () => {
  const ociTar = join(daemon.dir, 'oci.tar');
  await writeOciLayoutTar(image, ociTar, 'example.com/team/app:1.0');
  const oci = cli(['image', 'import', ociTar]);
  assert.equal(oci.code, 0, oci.stderr);
  assert.equal(lastLine(oci.stdout), `example.com/team/app:1.0@${image.manifest.digest}`);

  const plain = [await buildLayer(baseLayer, { gzip: false }), await buildLayer(topLayer, { gzip: false })];
  const saved = buildImage(plain);
  const dockerTar = join(daemon.dir, 'docker.tar');
  await writeDockerSaveTar(plain, saved, dockerTar, 'saved/app:latest');
  const docker = cli(['image', 'import', dockerTar]);
  assert.equal(docker.code, 0, docker.stderr);
  assert.match(lastLine(docker.stdout), /^docker\.io\/saved\/app:latest@sha256:[0-9a-f]{64}$/);
  const stored = images().find((i) => i.reference === 'docker.io/saved/app:latest');
  assert.equal(stored?.layers.length, 2);
  assert.equal(debugfs(blockImage(stored!.digest), 'cat /etc/hc-layer2'), 'from layer two\n');
});

test('import refuses an archive whose manifest.json names files outside it', async () => {
  const plain = [await buildLayer(baseLayer, { gzip: false })];
  const outsideImage = buildImage(plain);
  const outside = join(daemon.dir, 'outside');
  mkdirSync(outside, { recursive: true });
  writeFileSync(join(outside, 'config.json'), outsideImage.config.bytes);
  writeFileSync(join(outside, 'layer.tar'), plain[0]!.bytes);
  const before = images().map((i) => i.reference);
  for (const [name, config, layer] of [
    ['dotdot', `${'../'.repeat(16)}${outside.slice(1)}/config.json`, `${'../'.repeat(16)}${outside.slice(1)}/layer.tar`],
    ['absolute', join(outside, 'config.json'), join(outside, 'layer.tar')],
  ] as const) {
    const tar = join(daemon.dir, `evil-${name}.tar`);
    await writeTar(tar, [{ name: 'manifest.json', bytes: Buffer.from(JSON.stringify([{ Config: config, RepoTags: [`evil/${name}:1`], Layers: [layer] }])) }]);
    const r = cli(['image', 'import', tar]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /manifest\.json's Config names ".*\/outside\/config\.json", which is not a file in the archive/);
    assert.match(r.stderr, /HC_IMAGE_UNSUPPORTED/);
  }
  assert.deepEqual(images().map((i) => i.reference), before, 'nothing was imported');
  assert.equal(existsSync(join(daemon.root, 'images', 'blobs', 'sha256', outsideImage.config.digest.slice(7))), false, 'the host file was not stored as a blob');
});

test('a hostile layer is refused with a clear error and leaves nothing in the store or outside', async () => {
  const evil = buildImage([await buildLayer([{ type: 'file', path: '../../../../tmp/hc-escape-test', content: 'escaped\n' }])]);
  await push('hc/evil', 'v1', evil);
  const r = cli(['image', 'pull', `${registry.host}/hc/evil:v1`]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /HC_IMAGE_UNSAFE_LAYER/);
  assert.equal(existsSync('/tmp/hc-escape-test'), false);
  assert.ok(!images().some((i) => i.reference.includes('hc/evil')));
  assert.equal(existsSync(blockImage(evil.manifest.digest)), false);
  assert.equal(existsSync(join(daemon.root, 'images', 'blobs', 'sha256', evil.layers[0]!.digest.slice(7))), false, 'the hostile blobs are dropped');
  assert.deepEqual(readdirSync(join(daemon.root, 'images', 'tmp')).filter((n) => !n.startsWith('.')), [], 'no scratch tree is left');
});

test('a blob that does not match its digest is an error and nothing is kept', async () => {
  const victim = buildImage([await buildLayer([{ type: 'file', path: 'victim', content: 'original bytes\n' }])]);
  await push('hc/corrupt', 'v1', victim);
  // Same length, other bytes: the registry serves it whole, only the digest can tell.
  const original = readFileSync(registry.blobPath(victim.layers[0]!.digest));
  writeFileSync(registry.blobPath(victim.layers[0]!.digest), Buffer.from(original.map((b) => b ^ 0xff)));
  const r = cli(['image', 'pull', `${registry.host}/hc/corrupt:v1`]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /HC_IMAGE_DIGEST_MISMATCH/);
  assert.equal(existsSync(join(daemon.root, 'images', 'blobs', 'sha256', victim.layers[0]!.digest.slice(7))), false);
  assert.ok(!images().some((i) => i.reference.includes('hc/corrupt')));
});

test('a workload VM has disk_size of room on / and cannot write more than that onto the host', async (t) => {
  const busybox = buildImage([await buildLayer(busyboxLayerEntries())], { cmd: ['/bin/sh'] });
  await push('hc/busybox', '1', busybox);
  const hac = join(daemon.dir, 'disk-vm.toml');
  writeFileSync(hac, `[spacecore]\nname = "diskvm"\n[hardware]\nmemory = 256\ndisk_size = 96\nref = "${registry.host}/hc/busybox:1"\n[workload]\ncommand = ["sleep", "100000"]\n[hypervisor]\nprovider = "qemu"\n[network]\nmode = "none"\n`);
  const spawn = cli(['spawn', '--hac', hac]);
  assert.equal(spawn.code, 0, `${spawn.stderr}\n${daemon.log()}`);
  const id = lastLine(spawn.stdout);
  const vm = JSON.parse(cli(['inspect', '--json', id]).stdout) as { disks: { name: string; path: string; format: string; readOnly: boolean }[]; imageDigest: string };
  const block = blockImage(vm.imageDigest);
  const blockSum = createHash('sha256').update(readFileSync(block)).digest('hex');
  assert.deepEqual(vm.disks.map((d) => [d.name, d.readOnly]), [['image', true], ['scratch', false]]);
  const scratch = vm.disks[1]!.path;

  // Room: the free space on the workload's / is about disk_size (ext4 keeps a little for itself).
  const df = cli(['exec', id, '--', 'df', '-k', '/']);
  assert.equal(df.code, 0, df.stderr);
  const available = Number(df.stdout.trim().split('\n').at(-1)!.trim().split(/\s+/)[3]);
  assert.ok(available >= 80 * 1024 && available <= 96 * 1024, `available on /: ${available} KiB\n${df.stdout}`);

  // The guest writes until the disk is full.
  const fill = cli(['exec', id, '--', 'sh', '-c', 'dd if=/dev/zero of=/fill bs=1M 2>&1; echo "dd exit $?"; sync; ls -l /fill']);
  assert.equal(fill.code, 0, fill.stderr);
  assert.match(fill.stdout, /No space left on device/);
  assert.match(fill.stdout, /dd exit [1-9]/, 'dd stops with an error');
  const filled = Number(/^\S+\s+\S+\s+\S+\s+\S+\s+(\d+)/m.exec(fill.stdout.split('\n').find((l) => l.endsWith('/fill')) ?? '')?.[1]);
  assert.ok(filled >= 80 * 1024 * 1024, `the guest wrote ${filled} bytes before ENOSPC`);
  const st = statSync(scratch);
  if (vm.disks[1]!.format === 'raw') {
    assert.equal(st.size, 96 * 1024 * 1024, 'the scratch file never grows');
    assert.ok(st.blocks * 512 <= 96 * 1024 * 1024, `host space used: ${st.blocks * 512} bytes`);
  } else {
    // A qcow2 overlay of the shared empty template: it holds what the guest wrote, plus a few tables
    // (header, refcounts, L1, one L2 table per 512 MiB: under 1 MiB for 96 MiB).
    assert.equal(vm.disks[1]!.format, 'qcow2');
    const info = JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', scratch], { encoding: 'utf8' })) as { 'virtual-size': number; 'backing-filename': string };
    assert.equal(info['virtual-size'], 96 * 1024 * 1024);
    assert.ok(st.size <= 97 * 1024 * 1024 && st.blocks * 512 <= 97 * 1024 * 1024, `the overlay stays within disk_size and its tables: ${st.size} bytes, ${st.blocks * 512} allocated`);
    assert.equal(statSync(info['backing-filename']).blocks * 512 < 8 * 1024 * 1024, true, 'the template holds only the empty filesystem');
  }
  assert.equal(createHash('sha256').update(readFileSync(block)).digest('hex'), blockSum, 'the shared image is unchanged');
  t.diagnostic(`disk_size 96 MiB: ${available} KiB free on / at start; the guest wrote ${filled} bytes before ENOSPC; scratch file ${st.size} bytes, ${st.blocks * 512} allocated on the host`);
  // The workload still runs and its files are still readable.
  const os = cli(['exec', id, '--', 'cat', '/etc/os-release']);
  assert.match(os.stdout, /Hypercore test image/);

  assert.equal(cli(['rm', '-f', id]).code, 0);
  assert.equal(existsSync(scratch), false, "the VM's scratch disk is removed with it");
});

test('a blank scratch disk is formatted in the guest; one that cannot be mounted leaves the writable layer on tmpfs', async () => {
  const busybox = buildImage([await buildLayer(busyboxLayerEntries())], { cmd: ['/bin/sh'] });
  await push('hc/busybox', '1', busybox);
  /** Creates a VM, puts `scratch` (raw bytes, or undefined for a blank disk) in place of its scratch disk, starts it. */
  const bootWith = (name: string, scratch: Buffer | undefined): { id: string; console: () => string } => {
    const hac = join(daemon.dir, `${name}.toml`);
    writeFileSync(hac, `[spacecore]\nname = "${name}"\n[hardware]\nmemory = 256\ndisk_size = 64\nref = "${registry.host}/hc/busybox:1"\n[workload]\ncommand = ["sleep", "100000"]\n[hypervisor]\nprovider = "qemu"\n[network]\nmode = "none"\n`);
    const created = cli(['create', '--hac', hac]);
    assert.equal(created.code, 0, `${created.stderr}\n${daemon.log()}`);
    const id = lastLine(created.stdout);
    const vm = JSON.parse(cli(['inspect', '--json', id]).stdout) as { disks: { name: string; path: string; format: string }[] };
    const disk = vm.disks.find((d) => d.name === 'scratch')!;
    const raw = join(daemon.dir, `${name}-scratch.raw`);
    writeFileSync(raw, scratch ?? Buffer.alloc(0));
    truncateSync(raw, 64 * 1024 * 1024);
    if (disk.format === 'qcow2') execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, disk.path]);
    else copyFileSync(raw, disk.path);
    const started = cli(['start', id]);
    assert.equal(started.code, 0, `${started.stderr}\n${daemon.log()}`);
    return { id, console: () => readFileSync(join(daemon.root, 'vms', id, 'console.log'), 'utf8') };
  };
  const writes = (id: string): void => {
    const r = cli(['exec', id, '--', 'sh', '-c', 'echo written > /probe && cat /probe']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'written');
  };

  const blank = bootWith('blankscratch', undefined);
  assert.match(blank.console(), /rootfs: formatted scratch disk \/dev\/vd[a-z]/);
  assert.match(blank.console(), /rootfs: overlay of \/dev\/vd[a-z] \(read-only\) and \/dev\/vd[a-z] at \/run\/hc\/rootfs/);
  writes(blank.id);

  // An ext superblock magic over junk: not formatted again, and the ext4 driver refuses it.
  const junk = Buffer.alloc(64 * 1024, 0xa5);
  junk.writeUInt16LE(0xef53, 1080);
  const broken = bootWith('brokenscratch', junk);
  assert.match(broken.console(), /rootfs: scratch disk \/dev\/vd[a-z] unusable \(mount ext4 \/dev\/vd[a-z] on \/run\/hc\/scratch: [^)]+\); using tmpfs for the writable layer/);
  assert.match(broken.console(), /rootfs: overlay of \/dev\/vd[a-z] \(read-only\) and tmpfs at \/run\/hc\/rootfs/);
  writes(broken.id);

  for (const id of [blank.id, broken.id]) assert.equal(cli(['rm', '-f', id]).code, 0);
});

test('create from a hac.toml: the daemon reads it as the CLI would (relative paths from its directory, --name over it); an image it lacks is pulled with progress first', async () => {
  await push('hc/test', 'first-use', image);
  const ref = `${registry.host}/hc/test:first-use`;
  assert.ok(!images().some((i) => i.reference === ref), 'not stored yet');
  const project = join(daemon.dir, 'first-use');
  mkdirSync(join(project, 'disks'), { recursive: true });
  writeFileSync(join(project, 'disks', 'root.ext4'), '');
  const hac = join(project, 'vm.toml');
  writeFileSync(hac, `[spacecore]\nname = "in-file"\n[hardware]\nmemory = 128\ndrive = "disks/root.ext4"\nref = "${ref}"\n[hypervisor]\nprovider = "qemu"\n[network]\nmode = "none"\n`);
  const created = cli(['create', '--hac', hac, '--name', 'first-use']);
  assert.equal(created.code, 0, `${created.stderr}\n${daemon.log().slice(-2000)}`);
  assert.match(created.stderr, new RegExp(`${ref.replace(/[.:/]/g, '\\$&')}: (resolving|unpacking|building|done)`), 'the pull showed its progress');
  assert.ok(images().some((i) => i.reference === ref), 'pulled');
  const vm = JSON.parse(cli(['inspect', '--json', 'first-use']).stdout) as { state: string; spec: { drive: string } };
  assert.equal(vm.state, 'created');
  assert.equal(vm.spec.drive, join(project, 'disks', 'root.ext4'), "relative to the hac.toml's directory, not the CLI's");
  // Stored now: the second create is the daemon's alone.
  const again = cli(['create', '--hac', hac]);
  assert.equal(again.code, 0, again.stderr);
  assert.doesNotMatch(again.stderr, /resolving|downloading/);
  for (const name of ['first-use', 'in-file']) assert.equal(cli(['rm', name]).code, 0);
  assert.equal(cli(['image', 'rm', ref]).code, 0);
});
