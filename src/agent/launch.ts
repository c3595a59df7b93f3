/**
 * Turns a ProcessSpec into what the process table starts: the executable, argv, environment,
 * working directory and credentials. Pure apart from the PATH lookup, so the rules (defaults,
 * `uid[:gid]`, Docker's "not found" wording) are testable on the host.
 */
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { Code, TtrpcError } from '../ttrpc/index.js';
import type { PipedChild } from './exec-helper.js';
import type { ProcessSpec } from './protocol/messages.js';

/** PATH when the spec sets none (Docker's default). */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Everything needed to start one process. */
export interface Launch {
  /** What runs: for a workload process this is crun, and `args` is crun's argv. */
  file: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  uid?: number;
  gid?: number;
  terminal: boolean;
  rows: number;
  cols: number;
  /** The argv the client asked for (shown by ListProcesses). */
  displayArgs: string[];
  inWorkload: boolean;
  /** When set, the process does not start: it "exits" at once with this status and stderr message. */
  failure?: { exitCode: number; message: string };
  /** Output may begin with a crun error that is rewritten Docker-style (see crun-errors.ts). */
  crunErrors?: boolean;
  /** Sends a signal somewhere else than the spawned pid (crun exec's inner process, crun kill). */
  kill?: (signal: NodeJS.Signals) => Promise<void>;
  /** Called once when the process is over (cleanup of pid files and the like). */
  onExit?: () => void;
  /** Starts the process some other way than spawning `file` (the workload's exec helper); pipes only. */
  spawn?: () => Promise<PipedChild>;
  /**
   * For a terminal in a container: the agent only opens the pty (nobody's controlling terminal) and
   * this starts the process on its slave, which the process makes its controlling terminal itself,
   * inside the container (exec-helper.c). Without it node-pty starts `file` leading a session of
   * the guest on the pty, which a shell in another pid namespace cannot use for job control.
   */
  spawnOnTerminal?: (tty: TerminalSlave) => Promise<PipedChild>;
}

/** The slave of a pty the agent opened for a process: its path (the same in a container) and a descriptor for stdio. */
export interface TerminalSlave {
  path: string;
  fd: number;
}

/**
 * Turns a user given by name (`nginx`, `app:staff`, as image configs often say) into numeric
 * `uid:gid` using the image's /etc/passwd and /etc/group, as Docker does. Numeric input is kept.
 */
export function resolveUser(user: string | undefined, rootfs: string): string | undefined {
  const text = (user ?? '').trim();
  if (text === '' || /^\d+(:\d+)?$/.test(text)) return text === '' ? undefined : text;
  const [name = '', group] = text.split(':');
  const entries = (file: string) =>
    (existsSync(join(rootfs, file)) ? readFileSync(join(rootfs, file), 'utf8') : '').split('\n').map((line) => line.split(':'));
  const account = entries('etc/passwd').find((f) => f[0] === name);
  const uid = account?.[2] ?? (/^\d+$/.test(name) ? name : undefined);
  if (uid === undefined) throw new TtrpcError(Code.INVALID_ARGUMENT, `user "${name}" is not in the image's /etc/passwd; use a numeric uid`);
  let gid = account?.[3] ?? '0';
  if (group !== undefined) {
    const found = /^\d+$/.test(group) ? group : entries('etc/group').find((f) => f[0] === group)?.[2];
    if (found === undefined) throw new TtrpcError(Code.INVALID_ARGUMENT, `group "${group}" is not in the image's /etc/group; use a numeric gid`);
    gid = found;
  }
  return `${uid}:${gid}`;
}

/** Parses `uid[:gid]` (numeric). Empty = root. gid defaults to 0 (names are resolved first, see resolveUser). */
export function parseUser(user: string | undefined): { uid: number; gid: number } {
  const text = (user ?? '').trim();
  if (text === '') return { uid: 0, gid: 0 };
  const m = /^(\d+)(?::(\d+))?$/.exec(text);
  if (!m) throw new TtrpcError(Code.INVALID_ARGUMENT, `user must be uid[:gid] with numeric ids, got "${text}"`);
  const uid = Number(m[1]);
  const gid = m[2] === undefined ? 0 : Number(m[2]);
  if (uid > 0xfffffffe || gid > 0xfffffffe) throw new TtrpcError(Code.INVALID_ARGUMENT, `user id out of range: "${text}"`);
  return { uid, gid };
}

/**
 * The environment: PATH (default above), HOME, TERM=xterm for terminals, then the spec's KEY=VALUE
 * entries on top (later ones win). Nothing leaks from the agent's own environment.
 */
export function buildEnv(spec: ProcessSpec, base: readonly string[] = [], uid = 0): Record<string, string> {
  const env: Record<string, string> = { PATH: DEFAULT_PATH, HOME: uid === 0 ? '/root' : '/' };
  if (spec.terminal) env.TERM = 'xterm';
  for (const entry of [...base, ...(spec.env ?? [])]) {
    const eq = entry.indexOf('=');
    if (eq <= 0) throw new TtrpcError(Code.INVALID_ARGUMENT, `env entries must be KEY=VALUE, got "${entry}"`);
    env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

/** `KEY=VALUE` list of an env object, in insertion order. */
export function envList(env: Record<string, string>): string[] {
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

/** Docker's message for a command that is not there (`docker exec c nosuch`). */
export function notFoundMessage(command: string): string {
  return `exec: "${command}": executable file not found in $PATH`;
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Looks `command` up like execvp: a name with a slash is used as is (relative to `cwd`), otherwise
 * each PATH entry is tried. Undefined when nothing executable is found.
 */
export function lookPath(command: string, path: string, cwd: string): string | undefined {
  if (command.includes('/')) return isExecutableFile(isAbsolute(command) ? command : join(cwd, command)) ? command : undefined;
  for (const dir of path.split(delimiter)) {
    const candidate = join(dir === '' ? cwd : dir, command);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

/** Validates the parts every spec needs. */
export function checkSpec(spec: ProcessSpec): void {
  if (!spec.args || spec.args.length === 0 || spec.args[0] === '') throw new TtrpcError(Code.INVALID_ARGUMENT, 'process args must not be empty');
}

/** The launch of a process in the VM itself (not in the workload's container). */
export function hostLaunch(spec: ProcessSpec): Launch {
  checkSpec(spec);
  const { uid, gid } = parseUser(spec.user);
  const env = buildEnv(spec, [], uid);
  const cwd = spec.cwd || '/';
  const args = [...spec.args];
  const launch: Launch = {
    file: args[0]!,
    args: args.slice(1),
    env,
    cwd,
    uid,
    gid,
    terminal: spec.terminal ?? false,
    rows: spec.rows || 24,
    cols: spec.cols || 80,
    displayArgs: args,
    inWorkload: false,
  };
  // Checked here rather than left to spawn: spawn's ENOENT cannot tell a missing command from a
  // missing cwd, and node-pty would just exit 1 after a failed exec in the child.
  let cwdOk = false;
  try {
    cwdOk = statSync(cwd).isDirectory();
  } catch {
    cwdOk = false;
  }
  if (!cwdOk) return { ...launch, failure: { exitCode: 126, message: `chdir to cwd ("${cwd}") failed: no such file or directory` } };
  const resolved = lookPath(args[0]!, env.PATH ?? DEFAULT_PATH, cwd);
  if (!resolved) return { ...launch, failure: { exitCode: 127, message: notFoundMessage(args[0]!) } };
  return { ...launch, file: resolved };
}
