/**
 * The workload: one OCI container, "hc-main", run by crun from the image disk, whose init is the
 * process "main" of the process table. Other processes join it through the exec helper (one
 * `crun exec` of a small forking process, exec-helper.ts) or, while the helper is not there, with
 * their own `crun exec`. crun gets the agent's pipes or the slave of the agent's pty as its stdio
 * (never --tty). A process on a terminal makes it its controlling terminal in a session of its own
 * inside the container (the helper's child does, and through crun the helper's binary runs as
 * `tty-session` before the command), as runc and crun do for `exec -t`: its shell has job control.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from '../system/command.js';
import { Code, TtrpcError } from '../ttrpc/index.js';
import { ExecHelper, type PipedChild } from './exec-helper.js';
import { buildEnv, checkSpec, envList, parseUser, resolveUser, type Launch } from './launch.js';
import { errorText, silentLog, type Log } from './log.js';
import { pidFileWritten } from './file-wait.js';
import { writeMetadataFiles } from './metadata-files.js';
import { CONTAINER_ID, workloadConfig } from './oci-config.js';
import type { ManagedProcess } from './process.js';
import { MAIN_PROCESS_ID, type ProcessTable } from './processes.js';
import type { ProcessSpec, ProcessStarted, StartWorkloadRequest } from './protocol/messages.js';
import { commandMounts, helperMounts, type MountRunner } from './mount-steps.js';
import { GUEST_ROOTFS_PATHS, prepareRootfs, rootfsPath, type CommandRunner, type RootfsPaths } from './rootfs.js';
import { crunOnTerminal, defaultExecHelper, terminalSessionArgs } from './terminal-session.js';

export interface WorkloadOptions {
  table: ProcessTable;
  log?: Log;
  /** Guest paths (tests use a temporary tree). */
  paths?: RootfsPaths;
  /** The crun binary (default `crun` from PATH). */
  crun?: string;
  /** crun's state directory, where a container that exists has its own (default /run/crun). */
  crunStateDir?: string;
  /** Runs mount/mkfs/crun helper commands (default: runCommand). */
  run?: CommandRunner;
  /**
   * Runs the rootfs mounts. Default: in one run of the exec helper when there is a helper and no
   * `run` was given (the guest), else one mount(8) each through `run`.
   */
  mounts?: MountRunner;
  /**
   * The exec helper's binary (default: `exec-helper` next to the agent's script, as the system
   * image ships it); null: exec always uses `crun exec`.
   */
  execHelper?: string | null;
}

/** Guest files bound into the container when they exist: the first existing source wins. */
const BIND_CANDIDATES: Record<string, readonly string[]> = {
  '/etc/resolv.conf': ['/run/hc/resolv.conf', '/etc/resolv.conf'],
  '/etc/hosts': ['/run/hc/hosts', '/etc/hosts'],
  '/etc/machine-id': ['/run/hc/machine-id'],
};

/** Environment crun itself runs with (the container's comes from config.json or --env). */
const CRUN_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };

/** Starts and tracks the workload container. */
export class Workload {
  private readonly table: ProcessTable;
  private readonly log: Log;
  private readonly paths: RootfsPaths;
  private readonly crun: string;
  private readonly crunStateDir: string;
  private readonly run: CommandRunner;
  private readonly mounts: MountRunner;
  private env: string[] = [];
  private cwd = '/';
  private starting = false;
  private adopted = false;
  /** The exec helper's binary; null on a host without one (execs then go through `crun exec`). */
  readonly helperBinary: string | null;
  /** The exec helper of the running container: starting, running, or undefined when it could not start. */
  private helper: Promise<ExecHelper | undefined> | undefined;

  constructor(options: WorkloadOptions) {
    this.table = options.table;
    this.log = options.log ?? silentLog;
    this.paths = options.paths ?? GUEST_ROOTFS_PATHS;
    this.crun = options.crun ?? 'crun';
    this.crunStateDir = options.crunStateDir ?? '/run/crun';
    this.run = options.run ?? ((file, args) => runCommand(file, args, { timeoutMs: 120_000 }));
    this.helperBinary = options.execHelper === undefined ? defaultExecHelper() : options.execHelper;
    this.mounts = options.mounts ?? (this.helperBinary && !options.run ? helperMounts(this.helperBinary) : commandMounts(this.run));
  }

  /** True once the container has been started (by this agent or, see adopt, a previous one). */
  get started(): boolean {
    return this.table.find(MAIN_PROCESS_ID) !== undefined || this.adopted;
  }

  /**
   * After an agent restart the container may still run: let exec reach it again. Its main process
   * is not ours any more, so "main" stays unknown to the new table.
   */
  async adopt(): Promise<void> {
    // Without crun's state of the container (every boot: /run is a new tmpfs) there is nothing to
    // adopt, and no `crun state` is run: adopt runs right after "ready", while the host's first
    // requests arrive, and under TCG a process start there delays them by hundreds of ms.
    if (!existsSync(join(this.crunStateDir, CONTAINER_ID))) return;
    try {
      if (!(await this.containerRunning())) return;
      const config = JSON.parse(await readFile(join(this.bundleDir(), 'config.json'), 'utf8')) as { process?: { env?: string[]; cwd?: string } };
      this.env = config.process?.env ?? [];
      this.cwd = config.process?.cwd ?? '/';
      this.adopted = true;
      this.table.setWorkloadLauncher((spec) => this.execLaunch(spec));
      this.log(`workload ${CONTAINER_ID} is still running; adopted it`);
      this.startHelper();
    } catch {
      // No container (the usual case at boot) or no crun: nothing to adopt.
    }
  }

  /**
   * StartWorkload: mounts the rootfs, writes config.json and runs `crun run` as process "main".
   * Fails with crun's error when the container cannot be created; a command that does not exist
   * is not a failure (main exits 127, like any process).
   */
  async start(req: StartWorkloadRequest): Promise<ProcessStarted> {
    checkSpec(req.process);
    // An adopted container may have ended since: then a new start is fine.
    if (this.adopted && !this.starting && !(await this.containerRunning())) {
      this.adopted = false;
      this.table.setWorkloadLauncher(undefined);
    }
    if (this.starting || this.table.find(MAIN_PROCESS_ID)?.running || this.adopted) {
      throw new TtrpcError(Code.FAILED_PRECONDITION, 'the workload is already running');
    }
    if (req.oncePerBoot && this.table.find(MAIN_PROCESS_ID)) throw new TtrpcError(Code.FAILED_PRECONDITION, 'the workload was already started in this boot');
    this.starting = true;
    try {
      const binds: Record<string, string> = {};
      for (const [dest, sources] of Object.entries(BIND_CANDIDATES)) {
        const source = sources.find((s) => existsSync(s));
        if (source) binds[dest] = source;
      }
      const rootfs = rootfsPath(this.paths.runDir);
      await prepareRootfs(this.paths, req, this.run, this.log, this.mounts);
      await writeMetadataFiles(rootfs, req.files ?? [], req.sshAuthorizedKeys ?? []);
      // After the mount: a user given by name is looked up in the image's own /etc/passwd.
      const user = resolveUser(req.process.user, rootfs);
      const process = { ...req.process, ...(user ? { user } : { user: '' }) };
      const config = workloadConfig({ process, rootfs, hostname: req.hostname || undefined, limits: req.limits, binds });
      const session = this.terminalSession(req.process);
      if (session) config.process.args = [...session, ...config.process.args];
      const bundle = this.bundleDir();
      // Synchronous: /run is a tmpfs, and this is on the boot path (see read-now.ts).
      mkdirSync(bundle, { recursive: true });
      writeFileSync(join(bundle, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
      const pidFile = join(bundle, 'main.pid');
      const logFile = join(bundle, 'crun.log');
      rmSync(pidFile, { force: true });
      rmSync(logFile, { force: true });
      // A container left by a run that ended (crun run normally deletes it) would block the id. Only
      // then is crun started for it: at boot there is none, and a crun run costs the boot time.
      if (existsSync(join(this.crunStateDir, CONTAINER_ID))) await this.run(this.crun, ['delete', '-f', CONTAINER_ID]).catch(() => undefined);
      this.env = config.process.env;
      this.cwd = config.process.cwd;
      const launch = this.crunLaunch(req.process, [`--log=${logFile}`, '--log-format=json', 'run', ...(session ? ['--preserve-fds=1'] : []), '--bundle', bundle, '--pid-file', pidFile, CONTAINER_ID], async (signal) => {
        await this.run(this.crun, ['kill', CONTAINER_ID, signal]);
      });
      const main = await this.table.start(launch, MAIN_PROCESS_ID);
      this.table.setWorkloadLauncher((s) => this.execLaunch(s));
      await this.confirmStarted(main, pidFile, logFile);
      // After the answer's way is clear: the helper's own crun exec must not delay the workload's
      // start, nor a console line (costly under TCG) its answer.
      setImmediate(() => {
        this.log(`workload started: pid ${main.pid}`);
        this.startHelper();
      });
      return { processId: MAIN_PROCESS_ID, pid: main.pid };
    } finally {
      this.starting = false;
    }
  }

  /** Waits until crun wrote the pid file (the container exists) or exited; a crun failure fails the RPC. */
  private async confirmStarted(main: ManagedProcess, pidFile: string, logFile: string): Promise<void> {
    const pid = await pidFileWritten(pidFile, main.wait());
    if (pid !== undefined || !main.exit) return;
    // 126/127: the command or its cwd is missing, which the filter turned into Docker's result.
    if (main.exit.exitCode === 126 || main.exit.exitCode === 127) return;
    const logged = await crunLogMessages(logFile);
    const output = main.output.read(0, 4096).chunks.map((c) => c.data.toString('utf8')).join('').trim();
    const detail = logged.length > 0 ? logged.join('; ') : output || 'no error message';
    this.table.remove(MAIN_PROCESS_ID);
    this.table.setWorkloadLauncher(undefined);
    throw new TtrpcError(Code.FAILED_PRECONDITION, `crun could not start the workload (exit ${main.exit.exitCode}): ${detail}`);
  }

  /** Starts the exec helper in the background; a failure is logged and exec keeps using crun. */
  private startHelper(): void {
    const binary = this.helperBinary;
    if (!binary) return;
    const starting = ExecHelper.start({
      crun: this.crun,
      containerId: CONTAINER_ID,
      binary,
      pidFile: join(this.bundleDir(), 'exec-helper.pid'),
      crunEnv: { ...CRUN_ENV },
      log: this.log,
    }).then(
      (helper) => {
        this.log('exec helper ready');
        return helper;
      },
      (err: unknown) => {
        this.log(`${errorText(err)}; exec uses crun exec`);
        return undefined;
      },
    );
    this.helper = starting;
  }

  /** Stops the exec helper (when the agent goes away; in a VM the container's end stops it too). */
  async stopExecHelper(): Promise<void> {
    const helper = await this.helper;
    this.helper = undefined;
    await helper?.stop();
  }

  /** The helper, waiting for one that is starting; undefined when there is none to use. */
  private async usableHelper(): Promise<ExecHelper | undefined> {
    const helper = await this.helper;
    if (!helper?.unusable) return helper;
    // It died (the workload may have killed it): start another for the next exec.
    if (this.helper && (await this.helper) === helper) this.startHelper();
    return undefined;
  }

  /**
   * The launch of a process inside the running workload: through the exec helper, or with its own
   * `crun exec` when there is no helper.
   */
  async execLaunch(spec: ProcessSpec): Promise<Launch> {
    checkSpec(spec);
    const { uid, gid } = parseUser(resolveUser(spec.user, rootfsPath(this.paths.runDir)));
    // The workload's environment, then the exec's own (as `docker exec -e`): crun exec with --env
    // replaces the environment instead of adding to it, so all of it is passed.
    const env = envList(buildEnv(spec, this.env, uid));
    const cwd = spec.cwd || this.cwd;
    const helper = await this.usableHelper();
    if (helper) return this.helperLaunch(helper, spec, { args: spec.args, env, cwd, uid, gid });
    const pidFile = join(this.bundleDir(), `exec-${randomBytes(6).toString('hex')}.pid`);
    const session = this.terminalSession(spec);
    const args = ['exec', ...(session ? ['--preserve-fds=1'] : []), `--pid-file=${pidFile}`, `--cwd=${cwd}`, `--user=${uid}:${gid}`, ...env.map((e) => `--env=${e}`), CONTAINER_ID, ...(session ?? []), ...spec.args];
    return {
      // Signalling crun exec itself would not reach the process inside; its pid file names it.
      ...this.crunLaunch(spec, args, async (signal) => {
        process.kill(await readPid(pidFile), signal);
      }),
      onExit: () => void rm(pidFile, { force: true }).catch(() => undefined),
    };
  }

  /** A process the exec helper forks: its errors are already in Docker's words, its signals go through the helper. */
  private helperLaunch(helper: ExecHelper, spec: ProcessSpec, run: { args: string[]; env: string[]; cwd: string; uid: number; gid: number }): Launch {
    let child: PipedChild | undefined;
    return {
      file: 'exec-helper',
      args: [],
      env: {},
      cwd: run.cwd,
      terminal: spec.terminal ?? false,
      rows: spec.rows || 24,
      cols: spec.cols || 80,
      displayArgs: [...spec.args],
      inWorkload: true,
      spawn: async () => (child = await helper.spawn(run)),
      spawnOnTerminal: async (tty) => (child = await helper.spawn({ ...run, tty: tty.path })),
      kill: async (signal) => {
        if (child) helper.signal(child, signal);
      },
    };
  }

  /** What runs before the command of a terminal process started by crun (see terminal-session.ts). */
  private terminalSession(spec: ProcessSpec): string[] | undefined {
    return terminalSessionArgs(spec.terminal, this.helperBinary);
  }

  /**
   * A crun invocation (run or exec) as a process of the table: the agent's pipes, or the slave of
   * the agent's pty, are the container's stdio. With a terminal session (see terminalSession) args
   * must carry `--preserve-fds=1`.
   */
  private crunLaunch(spec: ProcessSpec, args: string[], kill: Launch['kill']): Launch {
    return {
      file: this.crun,
      args,
      env: { ...CRUN_ENV },
      cwd: '/',
      terminal: spec.terminal ?? false,
      rows: spec.rows || 24,
      cols: spec.cols || 80,
      displayArgs: [...spec.args],
      inWorkload: true,
      crunErrors: true,
      kill,
      spawnOnTerminal: crunOnTerminal(this.crun, args, this.terminalSession(spec) ? this.helperBinary : null, CRUN_ENV),
    };
  }

  /** True when crun reports the container as running. */
  private async containerRunning(): Promise<boolean> {
    try {
      const { stdout } = await runCommand(this.crun, ['state', CONTAINER_ID], { timeoutMs: 20_000, env: CRUN_ENV });
      return (JSON.parse(stdout) as { status?: string }).status === 'running';
    } catch {
      return false;
    }
  }

  /** crun's pid file of the container's init (its namespaces are the workload's). */
  get pidFile(): string {
    return join(this.bundleDir(), 'main.pid');
  }

  /** A restored guest's new hostname, for the HOSTNAME of processes exec'd from now on. */
  renamed(hostname: string): void {
    this.env = this.env.map((e) => (e.startsWith('HOSTNAME=') ? `HOSTNAME=${hostname}` : e));
  }

  private bundleDir(): string {
    return join(this.paths.runDir, 'bundle');
  }
}

/** How long a signal to a `crun exec` process waits for crun to name the process. */
const EXEC_PID_WAIT_MS = 1000;

/** The pid in a crun pid file, waiting briefly for crun to write it. */
async function readPid(pidFile: string): Promise<number> {
  let timer: NodeJS.Timeout | undefined;
  const waited = new Promise((r) => (timer = setTimeout(r, EXEC_PID_WAIT_MS)));
  try {
    const pid = await pidFileWritten(pidFile, waited);
    if (pid === undefined) throw new TtrpcError(Code.FAILED_PRECONDITION, 'the process has not started yet (no pid from crun)');
    return pid;
  } finally {
    clearTimeout(timer);
  }
}

/** The messages of crun's JSON log (`--log-format=json`), oldest first. */
export async function crunLogMessages(logFile: string): Promise<string[]> {
  const text = await readFile(logFile, 'utf8').catch(() => '');
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const entry = JSON.parse(line) as { msg?: unknown };
      if (typeof entry.msg === 'string') out.push(entry.msg);
    } catch {
      out.push(line.trim());
    }
  }
  return out;
}
