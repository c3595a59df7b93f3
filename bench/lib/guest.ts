/** The guest side of a bench: the boot kernel's version, and waiting for a line in a VM's console log. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { bootDir, sleep } from '../../test/e2e/harness.js';

/** The kernel version set-up recorded in `<bootDir>/manifest.json`, or `?`. */
export function kernelVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(bootDir, 'manifest.json'), 'utf8')) as { kernelVersion?: string }).kernelVersion ?? '?';
  } catch {
    return '?';
  }
}

export interface ConsoleWait {
  /** Start of the timing and of the timeout (performance.now()). */
  t0: number;
  timeoutMs: number;
  pollMs: number;
  /** Set `reason` to stop waiting with that error (e.g. the spawn that should make the VM failed). */
  abort: { reason?: string };
  /** VM directories to skip (VMs that were there before). */
  exclude?: ReadonlySet<string>;
  /** The error message on timeout, given the console.log paths looked at. */
  timeoutMessage: (consoleLogs: readonly string[]) => string;
}

/**
 * Polls `<root>/vms/<id>/console.log` of every VM directory (but `exclude`) until one contains
 * `line`; resolves with the time since `t0`. Polling may start before the VM directory exists.
 */
export async function waitForConsoleLine(root: string, line: string, w: ConsoleWait): Promise<number> {
  const vmsDir = join(root, 'vms');
  for (;;) {
    if (w.abort.reason) throw new Error(w.abort.reason);
    let logs: string[] = [];
    try {
      logs = readdirSync(vmsDir)
        .filter((d) => !w.exclude?.has(d))
        .map((d) => join(vmsDir, d, 'console.log'));
    } catch {
      // not created yet
    }
    for (const log of logs) {
      try {
        if (readFileSync(log, 'latin1').includes(line)) return performance.now() - w.t0;
      } catch {
        // not created yet
      }
    }
    if (performance.now() - w.t0 > w.timeoutMs) throw new Error(w.timeoutMessage(logs));
    await sleep(w.pollMs);
  }
}
