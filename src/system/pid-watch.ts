/**
 * Watching a process the daemon did not start as a child (a detached VMM, or one adopted after a
 * restart): poll its liveness, a zombie counting as gone, and tell once when it is gone. Every
 * provider uses this; a provider with a faster signal (QEMU's QMP socket closing) adds its own.
 */
import { isOurProcess } from './process.js';

export const PID_POLL_MS = 2000;

/** Calls `onGone` once when `pid` (whose command line holds `marker`) is gone; returns a stop function. */
export function watchPid(pid: number, marker: string, onGone: () => void, intervalMs = PID_POLL_MS): () => void {
  let stopped = false;
  const timer = setInterval(() => {
    void isOurProcess(pid, marker).then((alive) => {
      if (alive || stopped) return;
      stopped = true;
      clearInterval(timer);
      onGone();
    });
  }, intervalMs);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
