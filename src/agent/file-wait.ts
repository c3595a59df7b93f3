/**
 * Waits for something in a directory (a pid file crun writes) without polling: inotify (fs.watch) on
 * the directory. In a guest under TCG every timer wake-up of the agent costs CPU that the process it
 * waits for (crun starting a container) needs; a 10–20 ms poll woke the agent some twenty times per
 * container start.
 */
import { watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import { pidInFile } from './read-now.js';

/**
 * Resolves with `look()`'s first defined value. `look` runs at once, then on every change in `dir`
 * (a file made, written or renamed into place), and every `fallbackMs` as a safety net for a missed
 * or failed watch. Resolves undefined once `end` settles and a last look finds nothing.
 */
export function watchFor<T>(dir: string, look: () => T | undefined, end: Promise<unknown>, fallbackMs: number): Promise<T | undefined> {
  // Handled whatever happens below: a rejection of `end` (a process's error) must not go unhandled.
  end.catch(() => undefined);
  const found = look();
  if (found !== undefined) return Promise.resolve(found);
  return new Promise((resolve) => {
    let watcher: FSWatcher | undefined;
    let ended = false;
    let done = false;
    const finish = (value: T | undefined): void => {
      done = true;
      clearInterval(timer);
      watcher?.close();
      resolve(value);
    };
    const again = (): void => {
      if (done) return;
      const value = look();
      if (value !== undefined || ended) finish(value);
    };
    const timer = setInterval(again, fallbackMs);
    const last = (): void => {
      ended = true;
      again();
    };
    end.then(last, last);
    try {
      watcher = watch(dir, again);
      watcher.on('error', () => watcher?.close());
    } catch {
      // No watch (a missing directory, inotify limits): the fallback timer looks instead.
    }
    // Made between the first look and the watch.
    again();
  });
}

/** How often a wait for crun's pid file looks again should its directory watch miss the file. */
const PID_FILE_FALLBACK_MS = 250;

/** The pid crun writes to `path`, once written; undefined if `end` (crun's exit) comes first. */
export function pidFileWritten(path: string, end: Promise<unknown>, fallbackMs = PID_FILE_FALLBACK_MS): Promise<number | undefined> {
  return watchFor(dirname(path), () => pidInFile(path), end, fallbackMs);
}
