/**
 * Facts about processes the daemon did not start as children (detached VMMs): whether a pid is
 * still alive, whether it is the process we think it is (pids get reused), waiting for it to end.
 */
import { readdir, readFile } from 'node:fs/promises';

/**
 * True when `pid` exists and is not a zombie. A thread group leader that exited on its own while
 * other threads run on shows Z too, and those threads still hold the process's files (a VMM's
 * disk images and their locks): it counts as alive until its task list is down to the leader.
 */
export async function isAlive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // A zombie still answers kill(0); its state letter (after the parenthesised name) says Z.
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state !== 'Z' && state !== 'X') return true;
    const threads = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
    return threads.length > 1;
  } catch {
    return false;
  }
}

/** The process's argv, or undefined when it is gone. */
export async function commandLineOf(pid: number): Promise<string[] | undefined> {
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    return raw.split('\0').filter((a) => a.length > 0);
  } catch {
    return undefined;
  }
}

/** True when `pid` is alive and one of its arguments contains `marker` (guards against pid reuse). */
export async function isOurProcess(pid: number, marker: string): Promise<boolean> {
  if (!(await isAlive(pid))) return false;
  const argv = await commandLineOf(pid);
  return argv !== undefined && argv.some((a) => a.includes(marker));
}

/** Polls until `pid` is gone or `timeoutMs` passes; returns whether it is gone. */
export async function waitForExit(pid: number, timeoutMs: number, pollMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!(await isAlive(pid))) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** Reads a pidfile; undefined when missing or not a number. */
export async function readPidFile(path: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt((await readFile(path, 'utf8')).trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Sends SIGKILL if the process is ours and waits for it to disappear. */
export async function killAndWait(pid: number, marker: string, timeoutMs = 5000): Promise<void> {
  if (!(await isOurProcess(pid, marker))) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  await waitForExit(pid, timeoutMs);
}
