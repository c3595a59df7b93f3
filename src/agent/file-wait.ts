/**
 * Waits for a file to appear without polling: inotify (fs.watch) on its directory. In a guest under
 * TCG every timer wake-up of the agent costs CPU that the process it waits for (crun starting the
 * workload) needs; a 20 ms poll woke the agent some twenty times per workload start.
 */
import { existsSync, watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Resolves once `path` exists, `end` settles, or `fallbackMs` passed (a safety net for a missed or
 * failed watch); the caller checks which.
 */
export async function fileAppears(path: string, end: Promise<unknown>, fallbackMs: number): Promise<void> {
  if (existsSync(path)) return;
  let watcher: FSWatcher | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve) => {
      timer = setTimeout(resolve, fallbackMs);
      void end.then(
        () => resolve(),
        () => resolve(),
      );
      try {
        watcher = watch(dirname(path), () => {
          if (existsSync(path)) resolve();
        });
        watcher.on('error', () => resolve());
      } catch {
        // No watch (inotify limits): the fallback timer paces the caller's loop.
      }
      // Made between the first look and the watch.
      if (existsSync(path)) resolve();
    });
  } finally {
    clearTimeout(timer);
    watcher?.close();
  }
}
