/**
 * The guest SYSTEM image: a read-only ext4 root for agent-driven VMs, built from the host's own
 * files (node, crun, their libraries, static busybox) plus the agent bundle and agent-init.sh as
 * /sbin/init. Cached as `<cacheDir>/system-<key>.ext4`, where the key hashes every input
 * (system-image-inputs.ts), so it is built once per host toolchain and agent version.
 *
 * Reproducible: mkfs runs with a fixed UUID/hash seed derived from the key and e2fsprogs' fake time
 * (block-image.ts), and inode times are pinned afterwards, so the same inputs give the same bytes.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, copyFile, lstat, mkdir, readdir, rename, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { InternalError } from '../core/errors.js';
import { buildExt4Image } from '../images/block-image.js';
import { runCommand } from '../system/command.js';
import { listApplets } from './busybox.js';
import { systemImageInputs, systemImageKey, type SystemImageInputOptions, type SystemImageInputs } from './system-image-inputs.js';

export { SYSTEM_IMAGE_FORMAT, GUEST_PATHS, systemImageInputs, systemImageKey, defaultAgentBundlePath, agentInitScriptPath } from './system-image-inputs.js';
export type { SystemImageInput, SystemImageInputs, SystemImageInputOptions } from './system-image-inputs.js';

/** Guest path of the JSON describing the image (format, key, input hashes). */
export const SYSTEM_IMAGE_INFO_PATH = '/etc/hc-system-image';

/** How many `system-*.ext4` files a build leaves in the cache dir (the new one included). */
export const SYSTEM_IMAGES_KEPT = 2;

const IMAGE_NAME = /^system-([0-9a-f]{64})\.ext4$/;
/** Staging dirs and temp images of interrupted builds; removed once this old. */
const STALE_MS = 60 * 60 * 1000;

export interface EnsureSystemImageOptions extends SystemImageInputOptions {
  /** Directory holding `system-<key>.ext4` (created if missing). */
  cacheDir: string;
  /** Called when this call starts a build (not on a cache hit, not when joining a build in flight). */
  onBuild?: (key: string) => void;
}

export interface SystemImage {
  /** `<cacheDir>/system-<key>.ext4`, read-only (mode 0444). */
  path: string;
  key: string;
  /** False when the image was already in the cache. */
  built: boolean;
  sizeBytes: number;
  /** Wall time of the call that produced this result (hashing inputs, and building if built). */
  buildMs: number;
}

/** The directories of the image; mount points stay empty (the init mounts over most of them). */
const DIRECTORIES = [
  'bin', 'sbin', 'usr/bin', 'usr/sbin', 'lib', 'lib64', 'etc', 'root', 'agent', 'var',
  'proc', 'sys', 'sys/fs/cgroup', 'dev', 'run', 'run/hc/rootfs', 'tmp', 'mnt',
] as const;

/** In-flight builds by image path, so concurrent callers in this process share one. */
const inFlight = new Map<string, Promise<SystemImage>>();

/**
 * Returns the system image for these inputs, building it if the cache does not have it.
 * Concurrent calls for the same image share one build; other processes may build the same image
 * at the same time harmlessly (atomic rename of identical bytes).
 */
export async function ensureSystemImage(options: EnsureSystemImageOptions): Promise<SystemImage> {
  const started = Date.now();
  const inputs = await systemImageInputs(options);
  const key = systemImageKey(inputs);
  const cacheDir = resolve(options.cacheDir);
  const path = join(cacheDir, `system-${key}.ext4`);

  const hit = await existingSize(path);
  if (hit !== undefined) {
    // Marks the image as recently used for the keep-last-N cleanup; failure only affects that order.
    const now = new Date();
    await utimes(path, now, now).catch(() => undefined);
    return { path, key, built: false, sizeBytes: hit, buildMs: Date.now() - started };
  }
  let pending = inFlight.get(path);
  if (!pending) {
    options.onBuild?.(key);
    pending = buildSystemImage(inputs, key, cacheDir, path, started);
    inFlight.set(path, pending);
    const forget = (): void => void inFlight.delete(path);
    pending.then(forget, forget);
  }
  return pending;
}

async function existingSize(path: string): Promise<number | undefined> {
  try {
    const st = await stat(path);
    return st.isFile() ? st.size : undefined;
  } catch {
    return undefined;
  }
}

async function buildSystemImage(inputs: SystemImageInputs, key: string, cacheDir: string, path: string, started: number): Promise<SystemImage> {
  await mkdir(cacheDir, { recursive: true });
  const suffix = `${process.pid}-${randomBytes(4).toString('hex')}`;
  // The tree is a subdirectory: its times are pinned to the epoch, while the stage dir's own
  // mtime must stay recent so pruneCache of a concurrent build does not take it for stale.
  const stage = join(cacheDir, `.system-stage-${suffix}`);
  const tree = join(stage, 'root');
  const tmpImage = join(cacheDir, `.system-${key}.ext4.tmp-${suffix}`);
  try {
    await mkdir(stage);
    await stageTree(tree, inputs, key);
    await buildExt4Image({ sourceDir: tree, output: tmpImage, digest: `sha256:${key}`, label: 'hc-system' });
    await pinInodeTimes(tmpImage, await guestPaths(tree));
    await chmod(tmpImage, 0o444);
    await rename(tmpImage, path);
  } finally {
    await rm(tmpImage, { force: true });
    await rm(stage, { recursive: true, force: true });
  }
  await pruneCache(cacheDir, key);
  const { size } = await stat(path);
  return { path, key, built: true, sizeBytes: size, buildMs: Date.now() - started };
}

/** Writes the image's tree under `root` (which must not exist yet). */
export async function stageTree(root: string, inputs: SystemImageInputs, key: string): Promise<void> {
  await mkdir(root);
  await chmod(root, 0o755);
  for (const dir of DIRECTORIES) await makeDirectories(root, dir);
  await chmod(join(root, 'tmp'), 0o1777);
  await chmod(join(root, 'root'), 0o700);
  // Many tools still write pid files and sockets under /var/run; /run is the tmpfs.
  await symlink('../run', join(root, 'var/run'));

  for (const file of inputs.files) {
    const target = join(root, file.guestPath);
    await makeDirectories(root, dirname(file.guestPath).slice(1));
    // A reflink where the filesystem supports it (node is ~100 MB); a plain copy otherwise.
    await copyFile(file.hostPath, target, constants.COPYFILE_FICLONE);
    await chmod(target, file.mode);
  }

  const busybox = inputs.files.find((f) => f.role === 'busybox');
  if (busybox) {
    const taken = new Set(inputs.files.map((f) => f.guestPath));
    for (const applet of await listApplets(busybox.hostPath)) {
      const link = `/bin/${applet}`;
      // Never shadow a real input file (node, crun, busybox itself).
      if (applet === 'busybox' || taken.has(link)) continue;
      await symlink('busybox', join(root, link));
    }
  }

  await writeGuestFile(root, 'etc/passwd', 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  // tty (5) because init mounts devpts with gid=5.
  await writeGuestFile(root, 'etc/group', 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n');
  await writeGuestFile(root, 'etc/hostname', 'hypercore\n');
  await writeGuestFile(root, 'etc/hosts', '127.0.0.1\tlocalhost\n::1\tlocalhost\n');
  const info = {
    format: inputs.format,
    key,
    files: Object.fromEntries(inputs.files.map((f) => [f.guestPath, f.sha256])),
  };
  await writeGuestFile(root, SYSTEM_IMAGE_INFO_PATH, `${JSON.stringify(info, null, 2)}\n`);
}

/*
 * mkfs.ext4 -d copies modes from the staging tree, and the daemon runs with umask 077; so every
 * directory and file of the tree gets its mode explicitly (0755, 0644), or the guest's /etc and
 * /bin would be unreadable to its non-root users and the image would depend on the caller's umask.
 */
async function makeDirectories(root: string, relative: string): Promise<void> {
  let path = root;
  for (const part of relative.split('/').filter(Boolean)) {
    path = join(path, part);
    const existed = await lstat(path).then(() => true, () => false);
    if (existed) continue;
    await mkdir(path);
    await chmod(path, 0o755);
  }
}

async function writeGuestFile(root: string, relative: string, content: string): Promise<void> {
  const path = join(root, relative);
  await writeFile(path, content);
  await chmod(path, 0o644);
}

/** Every path of the staged tree as a guest path ('/', '/bin', '/bin/sh', ...). */
async function guestPaths(root: string): Promise<string[]> {
  const out = ['/'];
  const stack = [''];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    for (const name of await readdir(join(root, dir))) {
      const rel = `${dir}/${name}`;
      out.push(rel);
      if ((await lstat(join(root, rel))).isDirectory()) stack.push(rel);
    }
  }
  return out.sort();
}

/**
 * Sets atime, mtime and ctime of every inode to the epoch. `mkfs.ext4 -d` copies them from the
 * staging tree, where ctime cannot be set and reading the files bumps atime, so without this two
 * builds of the same inputs would differ in a few hundred bytes of inode tables.
 */
async function pinInodeTimes(image: string, paths: readonly string[]): Promise<void> {
  const commands = ['/lost+found', ...paths]
    .flatMap((p) => ['atime', 'mtime', 'ctime'].map((field) => `sif "${p}" ${field} 0\n`))
    .join('');
  // Fake time also keeps debugfs from stamping the superblock's write time.
  const { stderr } = await runCommand('debugfs', ['-w', '-f', '-', image], {
    input: commands,
    timeoutMs: 60_000,
    env: { ...process.env, E2FSPROGS_FAKE_TIME: '1' },
  });
  // debugfs exits 0 even when a command fails; everything but its version banner is an error.
  const problems = stderr.split('\n').filter((l) => l.trim() && !/^debugfs \d/.test(l));
  if (problems.length > 0) throw new InternalError(`debugfs could not pin inode times in ${image}: ${problems.slice(0, 3).join('; ')}`);
}

/** Keeps the new image and the most recently used other ones (SYSTEM_IMAGES_KEPT in all); drops stale temp files. */
async function pruneCache(cacheDir: string, keepKey: string): Promise<void> {
  const others: { path: string; mtimeMs: number }[] = [];
  for (const name of await readdir(cacheDir)) {
    const path = join(cacheDir, name);
    const st = await lstat(path).catch(() => undefined);
    if (!st) continue;
    const match = IMAGE_NAME.exec(name);
    if (match && match[1] !== keepKey) others.push({ path, mtimeMs: st.mtimeMs });
    else if (name.startsWith('.system-') && Date.now() - st.mtimeMs > STALE_MS) await rm(path, { recursive: true, force: true });
  }
  others.sort((a, b) => b.mtimeMs - a.mtimeMs);
  // A VM still running from a removed image keeps its open file; new VMs use the new image.
  for (const old of others.slice(SYSTEM_IMAGES_KEPT - 1)) await rm(old.path, { force: true });
}
