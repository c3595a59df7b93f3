/**
 * Terminal processes that crun starts (the workload's `crun run` and `crun exec`, a pod
 * container's): the slave of the agent's pty is crun's stdio, and the exec helper's binary, handed
 * to crun as descriptor 3, runs first as `tty-session`: inside the container it makes the pty the
 * controlling terminal of a session of its own, then executes the command (exec-helper.c). A
 * session led from outside the container's pid namespace is one its shell cannot use for job control.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { HELPER_IN_CONTAINER, spawnCrunWithHelper, TTY_SESSION_ARG } from './exec-helper.js';
import type { Launch } from './launch.js';

/** `exec-helper` beside the running agent (/agent/agent.js in the guest, dist/agent/agent.js in a checkout). */
export function defaultExecHelper(): string | null {
  const script = process.argv[1];
  const path = script ? join(dirname(script), 'exec-helper') : '';
  return path && existsSync(path) ? path : null;
}

/**
 * What goes before the command of a process crun starts: for a terminal, the helper as
 * `tty-session` (crun's args must then carry `--preserve-fds=1`). Undefined for pipes, or when there
 * is no binary (a development host without gcc): the process has the pty as its stdio, but no
 * controlling terminal.
 */
export function terminalSessionArgs(terminal: boolean | undefined, binary: string | null): string[] | undefined {
  return terminal && binary ? [HELPER_IN_CONTAINER, TTY_SESSION_ARG] : undefined;
}

/** Starts crun with `args` on the slave of the agent's pty (and the helper's binary as descriptor 3 when `binary`). */
export function crunOnTerminal(crun: string, args: string[], binary: string | null, env: Record<string, string>): NonNullable<Launch['spawnOnTerminal']> {
  return async (tty) => {
    const stdio = [tty.fd, tty.fd, tty.fd];
    return binary ? spawnCrunWithHelper(crun, args, binary, stdio, env) : spawn(crun, args, { stdio, env, cwd: '/' });
  };
}
