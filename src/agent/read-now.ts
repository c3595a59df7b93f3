/**
 * Reads a small in-memory file (/proc, /sys, tmpfs) synchronously; undefined when it cannot be read.
 * For the agent's hot paths under TCG: a trip through libuv's thread pool (a worker thread woken,
 * then the main thread) costs the guest far more than such a read itself, most of all in a guest
 * just restored from a snapshot, whose every code path the emulator translates anew.
 */
import { readFileSync } from 'node:fs';

export function readNow(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** A pid file's process id; undefined while the file is missing, empty or partly written. */
export function pidInFile(path: string): number | undefined {
  const pid = Number((readNow(path) ?? '').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}
