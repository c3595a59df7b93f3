/**
 * Starting a program that must outlive the daemon (a VMM that does not daemonize itself): its own
 * session (no signal to the daemon's process group reaches it), stdin from /dev/null, stdout and
 * stderr appended to files (a pipe would break when the daemon dies), and a pidfile written as
 * soon as the pid is known, so a daemon that dies right after can still find and adopt it.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { CommandFailedError } from '../core/errors.js';
import { describeCommand } from './command.js';

export interface DetachedCommand {
  file: string;
  args: readonly string[];
  /** Where the process's stdout and stderr are appended (one file may serve both). */
  stdoutPath: string;
  stderrPath: string;
  pidFile: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** Starts `command` detached; resolves with its pid once it runs (exec succeeded). */
export async function launchDetached(command: DetachedCommand): Promise<{ pid: number }> {
  const out = openSync(command.stdoutPath, 'a', 0o600);
  const err = command.stderrPath === command.stdoutPath ? out : openSync(command.stderrPath, 'a', 0o600);
  try {
    const child = spawn(command.file, command.args, { detached: true, stdio: ['ignore', out, err], cwd: command.cwd, env: command.env ?? process.env });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid!));
      child.once('error', (e: NodeJS.ErrnoException) => {
        const reason = e.code === 'ENOENT' ? 'could not be started: executable not found' : `could not be started: ${e.message}`;
        reject(new CommandFailedError({ command: describeCommand(command.file, command.args), exitCode: null, signal: null, stderrTail: '', reason }));
      });
    });
    writeFileSync(command.pidFile, `${pid}\n`, { mode: 0o600 });
    // The daemon does not wait for it: it is watched by pid (watchPid), as after a restart.
    child.unref();
    return { pid };
  } finally {
    closeSync(out);
    if (err !== out) closeSync(err);
  }
}
