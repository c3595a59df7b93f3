/** The initramfs-only guest of the kernel-only e2e tests: static busybox and an /init that prints a line and ends. */
import { writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { loadStaticBusybox } from '../../src/guest/busybox.js';
import { encodeNewc } from '../../src/guest/newc.js';

/** Writes the gzipped cpio to `path`; its /init echoes `marker`, then powers off or reboots (`end`). */
export async function writeHelloInitramfs(path: string, marker: string, end: 'poweroff' | 'reboot'): Promise<void> {
  const init = `#!/bin/busybox sh\n/bin/busybox echo "${marker}"\n/bin/busybox ${end} -f\n`;
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
