/**
 * A tiny busybox ext4 root image for demos and e2e tests: its /sbin/init prints a marker line and
 * idles. Built with `mkfs.ext4 -d` from a staging tree, so it needs no loop mount and no root.
 */
import { chmod, copyFile, mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError } from '../core/errors.js';
import { runCommand } from '../system/command.js';
import { listApplets, loadStaticBusybox } from './busybox.js';

/** The line the demo init prints once userspace runs; tests and the README wait for it. */
export const DEMO_MARKER = 'hypercore-demo: guest is up';

export interface DemoRootfsOptions {
  /** Image file to write (replaced atomically). */
  output: string;
  /** Line printed first by /sbin/init. Default DEMO_MARKER. One line. */
  marker?: string;
  /** Image size in MiB (the file is sparse). Default 16. */
  sizeMiB?: number;
  /**
   * Extra files by absolute path in the guest, e.g. `{ '/etc/rc.local': '#!/bin/sh\necho hi\n' }`.
   * Content starting with `#!` is made executable. /etc/rc.local, if executable, runs after the marker.
   */
  files?: Record<string, string>;
  /** Defaults to the host's static busybox. */
  busyboxPath?: string;
}

/** Path of the init script shipped next to this module (copied to dist/ by scripts/copy-assets.mjs). */
export function demoInitScriptPath(): string {
  return fileURLToPath(new URL('./demo-init.sh', import.meta.url));
}

/** Validates a guest path from `files`, returning it relative to the root. */
function guestRelative(path: string): string {
  const normal = posix.normalize(path);
  // '..' is refused outright: normalize('/../x') is '/x', which would silently mean another file.
  if (!path.startsWith('/') || normal === '/' || path.split('/').includes('..') || path.includes('\0')) {
    throw new InvalidArgumentError(`demo rootfs file path must be absolute inside the guest: "${path}"`, [{ path: 'files', message: 'invalid path', value: path }]);
  }
  return normal.slice(1);
}

/** Builds the demo root image at `options.output`. */
export async function buildDemoRootfs(options: DemoRootfsOptions): Promise<void> {
  const marker = options.marker ?? DEMO_MARKER;
  if (/[\r\n]/.test(marker)) throw new InvalidArgumentError('the demo marker must be a single line', [{ path: 'marker', message: 'contains a newline' }]);
  const sizeMiB = options.sizeMiB ?? 16;
  if (!Number.isInteger(sizeMiB) || sizeMiB < 8 || sizeMiB > 65536) {
    throw new InvalidArgumentError(`demo rootfs size must be an integer number of MiB from 8 to 65536, got ${sizeMiB}`, [{ path: 'sizeMiB', message: 'out of range', value: sizeMiB }]);
  }
  const extra = Object.entries(options.files ?? {}).map(([path, content]) => [guestRelative(path), content] as const);
  const busybox = await loadStaticBusybox(options.busyboxPath);
  const applets = await listApplets(busybox.path);

  const work = await mkdtemp(join(tmpdir(), 'hc-demo-rootfs-'));
  const tree = join(work, 'root');
  const tmpImage = `${options.output}.tmp-${process.pid}`;
  try {
    for (const dir of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'dev', 'proc', 'sys', 'tmp', 'run', 'root', 'etc/hypercore-demo']) {
      await mkdir(join(tree, dir), { recursive: true });
    }
    await chmod(join(tree, 'tmp'), 0o1777);
    await copyFile(busybox.path, join(tree, 'bin/busybox'));
    await chmod(join(tree, 'bin/busybox'), 0o755);
    // Every applet as /bin/<name> makes the demo a usable little system (sh, ls, ps, ip, ...).
    for (const applet of applets) if (applet !== 'busybox') await symlink('busybox', join(tree, 'bin', applet));
    await writeFile(join(tree, 'sbin/init'), await readFile(demoInitScriptPath()), { mode: 0o755 });
    await writeFile(join(tree, 'etc/hypercore-demo/marker'), `${marker}\n`);
    await writeFile(join(tree, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    await writeFile(join(tree, 'etc/group'), 'root:x:0:\n');
    await writeFile(join(tree, 'etc/hostname'), 'hypercore-demo\n');
    for (const [rel, content] of extra) {
      const target = join(tree, rel);
      await mkdir(dirname(target), { recursive: true });
      await rm(target, { force: true });
      await writeFile(target, content, { mode: content.startsWith('#!') ? 0o755 : 0o644 });
    }
    await mkdir(dirname(options.output), { recursive: true });
    await runCommand('mkfs.ext4', ['-q', '-F', '-b', '4096', '-L', 'hc-demo', '-d', tree, tmpImage, `${sizeMiB}M`], { timeoutMs: 120_000 });
    await rename(tmpImage, options.output);
  } finally {
    await rm(tmpImage, { force: true });
    await rm(work, { recursive: true, force: true });
  }
}
