/** Initramfs-only guests of the kernel-only e2e tests: static busybox and an /init (e.g. one that prints a line and ends). */
import { writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { loadStaticBusybox } from '../../src/guest/busybox.js';
import { encodeNewc } from '../../src/guest/newc.js';

/** Writes the gzipped cpio to `path`; its /init echoes `marker`, then powers off or reboots (`end`). */
export async function writeHelloInitramfs(path: string, marker: string, end: 'poweroff' | 'reboot'): Promise<void> {
  await writeBusyboxInitramfs(path, `#!/bin/busybox sh\n/bin/busybox echo "${marker}"\n/bin/busybox ${end} -f\n`);
}

/** Writes a gzipped cpio of static busybox and `init` as /init to `path`. */
export async function writeBusyboxInitramfs(path: string, init: string): Promise<void> {
  writeFileSync(
    path,
    gzipSync(
      encodeNewc([
        { type: 'dir', path: 'bin' },
        { type: 'dir', path: 'dev' },
        { type: 'chardev', path: 'dev/console', major: 5, minor: 1, mode: 0o600 },
        { type: 'file', path: 'bin/busybox', data: (await loadStaticBusybox()).data, mode: 0o755 },
        { type: 'file', path: 'init', data: Buffer.from(init), mode: 0o755 },
      ]),
    ),
  );
}
