/**
 * The containers of a pod VM: several crun containers, each on its own root disk, created,
 * started, exec'd into, killed and deleted while the VM runs.
 *
 * Each container lives in `<base>/<id>/`: its root disk (found by the virtio serial of the slot
 * the host swapped it into) mounted at `rootfs/`, the files the host copied in (hosts,
 * resolv.conf, ...) in `files/`, and the OCI `config.json` the host translated for the guest.
 * `StartContainer` runs `crun run` as the process `<id>` of the process table (pipes or a pty the
 * agent owns, as for the single workload: a terminal process leads a session inside the container,
 * see terminal-session.ts); `crun exec --process` runs an exec as `<id>/<exec id>`.
 * Missing or foreign executables are refused at create, with runc's words, because crun would
 * only fail after the container has started.
 */
import { openSync, readSync, closeSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from '../system/command.js';
import { Code, TtrpcError } from '../ttrpc/index.js';
import { DEFAULT_PATH, type Launch } from './launch.js';
import { errorText, silentLog, type Log } from './log.js';
import type { ManagedProcess } from './process.js';
import type { ProcessTable } from './processes.js';
import { containerProcessId, identifierProblem, type ContainerStatsResponse, type ContainerStatus, type CreateContainerRequest, type ExecContainerRequest, type KillContainerRequest, type StartContainerRequest, type UpdateContainerRequest } from './protocol/container-messages.js';
import type { ProcessStarted } from './protocol/messages.js';
import { findExecutable } from './root-path.js';
import { pidFileWritten } from './file-wait.js';
import { pidInFile } from './read-now.js';
import { kmsgReader, OomKills, type RecordReader } from './oom-kills.js';
import { findDisk, isMounted, type CommandRunner } from './rootfs.js';
import { crunOnTerminal, defaultExecHelper, terminalSessionArgs } from './terminal-session.js';
import { crunLogMessages } from './workload.js';

export interface ContainerPaths {
  /** Where container directories go (/run/hc/containers). */
  baseDir: string;
  /** /sys/block, /dev and /proc/mounts (tests point them elsewhere). */
  sysBlock: string;
  dev: string;
  mounts: string;
  /** The cgroup v2 mount (/sys/fs/cgroup). */
  cgroupRoot: string;
}

export const GUEST_CONTAINER_PATHS: ContainerPaths = { baseDir: '/run/hc/containers', sysBlock: '/sys/block', dev: '/dev', mounts: '/proc/mounts', cgroupRoot: '/sys/fs/cgroup' };

export interface PodContainersOptions {
  table: ProcessTable;
  log?: Log;
  paths?: ContainerPaths;
  crun?: string;
  run?: CommandRunner;
  /** The exec helper's binary, for terminal sessions (default: beside the agent); null: none. */
  execHelper?: string | null;
  /** The kernel log's records, for OOM kills (default: /dev/kmsg; null: none, memory.events only). */
  kernelLog?: RecordReader | null;
}

/** Names of files the host copies in. */
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Bind sources the host names relative to the container's directory: the files it copied in. */
const FILES_SOURCE = /^files\/[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Namespaces a container may share with its pod's sandbox. */
const SHAREABLE = new Set(['ipc', 'uts', 'pid']);
const CRUN_ENV = { PATH: DEFAULT_PATH };

type OciConfig = {
  process?: { args?: unknown; env?: unknown; cwd?: unknown; terminal?: boolean };
  root?: { path?: string; readonly?: boolean };
  linux?: { namespaces?: { type: string; path?: string }[]; cgroupsPath?: string };
  mounts?: { destination: string; type?: string; source?: string; options?: string[] }[];
} & Record<string, unknown>;

interface GuestContainer {
  id: string;
  dir: string;
  rootfs: string;
  cgroup: string;
  /** Whether `crun run` was started (a created container has no process yet). */
  started: boolean;
}

function checkIdentifier(what: string, id: string): void {
  const problem = identifierProblem(what, id);
  if (problem) throw new TtrpcError(Code.INVALID_ARGUMENT, problem);
}

/** The containers of this VM, by id. */
export class PodContainers {
  private readonly containers = new Map<string, GuestContainer>();
  private readonly busy = new Set<string>();
  private readonly table: ProcessTable;
  private readonly log: Log;
  private readonly paths: ContainerPaths;
  private readonly crun: string;
  private readonly run: CommandRunner;
  private readonly helperBinary: string | null;
  private readonly kernelLog: RecordReader | null | undefined;
  private oomKillsLog: OomKills | undefined;

  constructor(options: PodContainersOptions) {
    this.kernelLog = options.kernelLog;
    this.helperBinary = options.execHelper === undefined ? defaultExecHelper() : options.execHelper;
    this.table = options.table;
    this.log = options.log ?? silentLog;
    this.paths = options.paths ?? GUEST_CONTAINER_PATHS;
    this.crun = options.crun ?? 'crun';
    this.run = options.run ?? ((file, args) => runCommand(file, args, { timeoutMs: 60_000, env: CRUN_ENV }));
  }

  /** Mounts the container's root disk and writes its bundle; runs nothing yet. */
  async create(req: CreateContainerRequest): Promise<void> {
    checkIdentifier('container id', req.containerId);
    const id = req.containerId;
    if (this.containers.has(id) || this.busy.has(id)) throw new TtrpcError(Code.ALREADY_EXISTS, `container ${id} already exists`);
    this.busy.add(id);
    const dir = join(this.paths.baseDir, id);
    const rootfs = join(dir, 'rootfs');
    try {
      const config = parseConfig(req.configJson);
      for (const f of req.files ?? []) if (!FILE_NAME.test(f.name)) throw new TtrpcError(Code.INVALID_ARGUMENT, `container file name "${f.name}" is not allowed`);
      const shared = this.sharedNamespaces(req);
      await mkdir(join(dir, 'files'), { recursive: true, mode: 0o700 });
      await mkdir(rootfs, { recursive: true });
      const device = await findDisk({ sysBlock: this.paths.sysBlock, dev: this.paths.dev, mounts: this.paths.mounts, runDir: dir }, req.diskSerial);
      // The slot held another disk before (or a zero-size stub): drop whatever the guest cached of it.
      await this.run('blockdev', ['--flushbufs', device]);
      await this.mount(['-t', 'ext4', device, rootfs], `the root disk of container ${id} (${device})`);
      try {
        for (const f of req.files ?? []) await writeFile(join(dir, 'files', f.name), f.content, { mode: f.mode || 0o644 });
        this.checkCommand(config, rootfs);
        const cgroup = `/hc/${id}`;
        const guestConfig = {
          ...config,
          root: { path: rootfs, readonly: config.root?.readonly ?? false },
          mounts: (config.mounts ?? []).map((m) => (m.source && FILES_SOURCE.test(m.source) ? { ...m, source: join(dir, m.source) } : m)),
          // The agent owns the terminal: crun gets a pty (or pipes) as its stdio.
          process: { ...config.process, terminal: false },
          linux: { ...config.linux, cgroupsPath: cgroup, namespaces: joinNamespaces(config.linux?.namespaces ?? [], shared) },
        };
        await writeFile(join(dir, 'config.json'), `${JSON.stringify(guestConfig)}\n`);
        this.oomKills.forget(cgroup);
        this.containers.set(id, { id, dir, rootfs, cgroup, started: false });
        this.log(`container ${id} created on ${device}`);
      } catch (err) {
        await this.run('umount', [rootfs]).catch(() => undefined);
        throw err;
      }
    } catch (err) {
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      throw err instanceof TtrpcError ? err : new TtrpcError(Code.FAILED_PRECONDITION, errorText(err));
    } finally {
      this.busy.delete(id);
    }
  }

  /** Runs the container's init with `crun run`; resolves once crun has created it (its pid is known). */
  async start(req: StartContainerRequest): Promise<ProcessStarted> {
    const c = this.get(req.containerId);
    if (c.started) throw new TtrpcError(Code.FAILED_PRECONDITION, `container ${c.id} was already started`);
    c.started = true;
    const pidFile = join(c.dir, 'init.pid');
    const logFile = join(c.dir, 'crun.log');
    await rm(pidFile, { force: true });
    const session = terminalSessionArgs(req.terminal, this.helperBinary);
    if (session) {
      // Whether the init gets a terminal is known only now: its command is prefixed here.
      const configFile = join(c.dir, 'config.json');
      const config = JSON.parse(await readFile(configFile, 'utf8')) as OciConfig & { process: { args: string[] } };
      await writeFile(configFile, `${JSON.stringify({ ...config, process: { ...config.process, args: [...session, ...config.process.args] } })}\n`);
    }
    const launch = this.crunLaunch(['--log', logFile, '--log-format=json', 'run', ...(session ? ['--preserve-fds=1'] : []), '--bundle', c.dir, '--pid-file', pidFile, c.id], req, async (signal) => {
      await this.run(this.crun, ['kill', c.id, signal]);
    });
    const proc = await this.table.start(launch, containerProcessId(c.id));
    const pid = await this.confirmStarted(proc, pidFile, logFile, `container ${c.id}`);
    this.log(`container ${c.id} started: pid ${pid}`);
    return { processId: proc.id, pid };
  }

  /** Runs a process in a started container (`crun exec --process`). */
  async exec(req: ExecContainerRequest): Promise<ProcessStarted> {
    const c = this.get(req.containerId);
    checkIdentifier('exec id', req.execId);
    if (!c.started) throw new TtrpcError(Code.FAILED_PRECONDITION, `container ${c.id} is not running`);
    const processId = containerProcessId(c.id, req.execId);
    if (this.table.find(processId)?.running) throw new TtrpcError(Code.ALREADY_EXISTS, `exec ${req.execId} already runs in container ${c.id}`);
    const processJson = parseProcess(req.processJson);
    this.checkCommand({ process: processJson }, c.rootfs);
    const processFile = join(c.dir, `exec-${req.execId}.json`);
    const session = terminalSessionArgs(req.terminal, this.helperBinary);
    await writeFile(processFile, JSON.stringify({ ...processJson, terminal: false, ...(session ? { args: [...session, ...(processJson.args as string[])] } : {}) }));
    const pidFile = join(c.dir, `exec-${req.execId}.pid`);
    await rm(pidFile, { force: true });
    const launch: Launch = {
      ...this.crunLaunch(['exec', ...(session ? ['--preserve-fds=1'] : []), '--process', processFile, '--pid-file', pidFile, c.id], req, async (signal) => {
        process.kill(Number((await readFile(pidFile, 'utf8')).trim()), signal);
      }),
      onExit: () => void Promise.all([rm(pidFile, { force: true }), rm(processFile, { force: true })]).catch(() => undefined),
    };
    const proc = await this.table.start(launch, processId);
    const pid = await this.confirmStarted(proc, pidFile, undefined, `exec ${req.execId} in container ${c.id}`);
    return { processId, pid };
  }

  async kill(req: KillContainerRequest): Promise<void> {
    const c = this.get(req.containerId);
    if (!c.started) throw new TtrpcError(Code.FAILED_PRECONDITION, `container ${c.id} has not been started`);
    await this.crunCall(['kill', ...(req.all ? ['--all'] : []), c.id, normalizeSignal(req.signal)], `kill container ${c.id}`);
  }

  /** New cgroup limits for a started container (`crun update --resources`). */
  async update(req: UpdateContainerRequest): Promise<void> {
    const c = this.get(req.containerId);
    if (!c.started) throw new TtrpcError(Code.FAILED_PRECONDITION, `container ${c.id} has not been started`);
    let resources: unknown;
    try {
      resources = JSON.parse(Buffer.from(req.resourcesJson).toString('utf8'));
    } catch (err) {
      throw new TtrpcError(Code.INVALID_ARGUMENT, `resources are not JSON: ${errorText(err)}`);
    }
    if (typeof resources !== 'object' || resources === null || Array.isArray(resources)) throw new TtrpcError(Code.INVALID_ARGUMENT, 'resources must be a JSON object');
    const file = join(c.dir, 'resources.json');
    await writeFile(file, JSON.stringify(resources));
    await this.crunCall(['update', '--resources', file, c.id], `update container ${c.id}`);
  }

  async pause(id: string): Promise<void> {
    await this.crunCall(['pause', this.get(id).id], `pause container ${id}`);
  }

  async resume(id: string): Promise<void> {
    await this.crunCall(['resume', this.get(id).id], `resume container ${id}`);
  }

  /** Removes the container (killing what still runs in it) and unmounts its root disk. Idempotent. */
  async delete(id: string): Promise<void> {
    checkIdentifier('container id', id);
    const c = this.containers.get(id);
    const dir = c?.dir ?? join(this.paths.baseDir, id);
    await this.run(this.crun, ['delete', '-f', id]).catch(() => undefined);
    const rootfs = join(dir, 'rootfs');
    if (await isMounted(this.paths.mounts, rootfs)) await this.run('umount', [rootfs]).catch(() => this.run('umount', ['-l', rootfs]));
    await rm(dir, { recursive: true, force: true });
    this.containers.delete(id);
    for (const p of this.table.list()) if (p.processId === id || p.processId.startsWith(`${id}/`)) this.table.remove(p.processId);
    this.log(`container ${id} deleted`);
  }

  async status(id: string): Promise<ContainerStatus> {
    const c = this.get(id);
    const events = parseKeyValues(await readFile(join(this.cgroupDir(c), 'memory.events'), 'utf8').catch(() => ''));
    const freeze = (await readFile(join(this.cgroupDir(c), 'cgroup.freeze'), 'utf8').catch(() => '0')).trim();
    // Once the init has exited, crun has removed the cgroup (and memory.events): the kernel's log still tells.
    return { oomKills: Math.max(events['oom_kill'] ?? 0, this.oomKills.of(c.cgroup)), paused: freeze === '1' };
  }

  /** The cgroup v2 numbers of the container (for containerd's Stats). */
  async stats(id: string): Promise<ContainerStatsResponse> {
    const dir = this.cgroupDir(this.get(id));
    const read = (name: string) => readFile(join(dir, name), 'utf8').catch(() => '');
    const [cpu, memory, memoryEvents, memoryCurrent, memoryMax, swapCurrent, swapMax, pidsCurrent, pidsMax, io] = await Promise.all(
      ['cpu.stat', 'memory.stat', 'memory.events', 'memory.current', 'memory.max', 'memory.swap.current', 'memory.swap.max', 'pids.current', 'pids.max', 'io.stat'].map(read),
    );
    return {
      cpu: parseKeyValues(cpu!),
      memory: parseKeyValues(memory!),
      memoryEvents: parseKeyValues(memoryEvents!),
      memoryCurrent: parseCount(memoryCurrent!),
      memoryMax: parseCount(memoryMax!),
      swapCurrent: parseCount(swapCurrent!),
      swapMax: parseCount(swapMax!),
      pidsCurrent: parseCount(pidsCurrent!),
      pidsMax: parseCount(pidsMax!),
      io: parseIoStat(io!),
    };
  }

  /** Every process of the container's cgroup tree (guest pids). */
  async pids(id: string): Promise<number[]> {
    const out: number[] = [];
    const walk = async (dir: string, depth: number): Promise<void> => {
      for (const line of (await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '')).split('\n')) if (/^\d+$/.test(line)) out.push(Number(line));
      if (depth >= 8) return;
      for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) if (entry.isDirectory()) await walk(join(dir, entry.name), depth + 1);
    };
    await walk(this.cgroupDir(this.get(id)), 0);
    return out.sort((a, b) => a - b);
  }

  private get(id: string): GuestContainer {
    const c = this.containers.get(id);
    if (!c) throw new TtrpcError(Code.NOT_FOUND, `container ${id} not found`);
    return c;
  }

  /** Opened with the first container: a VM without containers reads no kernel log. */
  private get oomKills(): OomKills {
    this.oomKillsLog ??= new OomKills(this.kernelLog === undefined ? kmsgReader() : (this.kernelLog ?? undefined));
    return this.oomKillsLog;
  }

  private cgroupDir(c: GuestContainer): string {
    return join(this.paths.cgroupRoot, c.cgroup);
  }

  /** Namespaces of the sandbox container to join: /proc/<its init pid>/ns/<type>. */
  private sharedNamespaces(req: CreateContainerRequest): Map<string, string> {
    const shared = new Map<string, string>();
    const types = req.shareNamespaces ?? [];
    if (types.length === 0) return shared;
    if (!req.sandboxId) throw new TtrpcError(Code.INVALID_ARGUMENT, 'share_namespaces needs sandbox_id');
    const sandbox = this.table.find(containerProcessId(req.sandboxId));
    const pid = sandbox?.running ? pidInFile(join(this.paths.baseDir, req.sandboxId, 'init.pid')) : undefined;
    if (pid === undefined) throw new TtrpcError(Code.FAILED_PRECONDITION, `sandbox container ${req.sandboxId} is not running; its namespaces cannot be joined`);
    for (const type of types) {
      if (!SHAREABLE.has(type)) throw new TtrpcError(Code.INVALID_ARGUMENT, `namespace "${type}" cannot be shared with the sandbox`);
      shared.set(type, `/proc/${pid}/ns/${type}`);
    }
    return shared;
  }

  /** Refuses a command crun could not exec, before anything runs. */
  private checkCommand(config: Pick<OciConfig, 'process'>, rootfs: string): void {
    const args = config.process?.args as string[];
    const env = (config.process?.env as string[] | undefined) ?? [];
    const path = env.find((e) => e.startsWith('PATH='))?.slice(5) ?? DEFAULT_PATH;
    try {
      findExecutable(rootfs, args[0]!, path, typeof config.process?.cwd === 'string' ? config.process.cwd : '/', readHead);
    } catch (err) {
      throw new TtrpcError(Code.FAILED_PRECONDITION, errorText(err));
    }
  }

  private async mount(args: string[], what: string): Promise<void> {
    try {
      await this.run('mount', args);
    } catch (err) {
      throw new TtrpcError(Code.INTERNAL, `cannot mount ${what}: ${errorText(err)}`);
    }
  }

  private async crunCall(args: string[], what: string): Promise<void> {
    try {
      await this.run(this.crun, args);
    } catch (err) {
      throw new TtrpcError(Code.FAILED_PRECONDITION, `${what}: ${errorText(err)}`);
    }
  }

  /** A crun invocation as a process of the table: the agent's pipes or pty are the container's stdio (with a terminal session, args carry `--preserve-fds=1`). */
  private crunLaunch(args: string[], io: { terminal?: boolean; rows?: number; cols?: number }, kill: Launch['kill']): Launch {
    const binary = terminalSessionArgs(io.terminal, this.helperBinary) ? this.helperBinary : null;
    return {
      file: this.crun,
      args,
      env: { ...CRUN_ENV },
      cwd: '/',
      terminal: io.terminal ?? false,
      rows: io.rows || 24,
      cols: io.cols || 80,
      displayArgs: args,
      inWorkload: true,
      crunErrors: true,
      kill,
      spawnOnTerminal: crunOnTerminal(this.crun, args, binary, CRUN_ENV),
    };
  }

  /** Waits for crun's pid file (the process exists); a crun that failed first fails the call with its error. */
  private async confirmStarted(proc: ManagedProcess, pidFile: string, logFile: string | undefined, what: string): Promise<number> {
    const pid = await pidFileWritten(pidFile, proc.wait());
    if (pid !== undefined) return pid;
    const logged = logFile ? await crunLogMessages(logFile) : [];
    const output = proc.output.read(0, 4096).chunks.map((c) => c.data.toString('utf8')).join('').trim();
    this.table.remove(proc.id);
    throw new TtrpcError(Code.FAILED_PRECONDITION, `crun could not start ${what} (exit ${proc.exit?.exitCode}): ${logged.join('; ') || output || 'no error message'}`);
  }
}

/** The OCI config the host sent: JSON with a process to run. */
function parseConfig(bytes: Uint8Array): OciConfig {
  let config: unknown;
  try {
    config = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw new TtrpcError(Code.INVALID_ARGUMENT, `config_json is not JSON: ${errorText(err)}`);
  }
  if (typeof config !== 'object' || config === null) throw new TtrpcError(Code.INVALID_ARGUMENT, 'config_json must be an object');
  parseProcess(Buffer.from(JSON.stringify((config as OciConfig).process ?? null)));
  return config as OciConfig;
}

function parseProcess(bytes: Uint8Array): NonNullable<OciConfig['process']> {
  let p: unknown;
  try {
    p = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw new TtrpcError(Code.INVALID_ARGUMENT, `process is not JSON: ${errorText(err)}`);
  }
  const proc = p as OciConfig['process'];
  const args = proc?.args;
  if (!Array.isArray(args) || args.length === 0 || typeof args[0] !== 'string' || args[0] === '' || args.some((a) => typeof a !== 'string')) {
    throw new TtrpcError(Code.INVALID_ARGUMENT, 'process.args must be a non-empty list of strings');
  }
  return proc!;
}

/** The namespaces with the shared ones pointing at the sandbox's; network is never listed (the VM's is the pod's). */
function joinNamespaces(namespaces: { type: string; path?: string }[], shared: Map<string, string>): { type: string; path?: string }[] {
  const out = namespaces.filter((n) => n.type !== 'network').map((n) => ({ type: n.type }));
  for (const [type, path] of shared) {
    const existing = out.find((n) => n.type === type);
    if (existing) Object.assign(existing, { path });
    else out.push({ type, path } as { type: string; path?: string });
  }
  return out;
}

function readHead(file: string): Buffer {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(64);
    const n = readSync(fd, buf, 0, 64, 0);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** "SIGTERM", "TERM" or "15" → what crun kill takes. */
function normalizeSignal(signal: string): string {
  const s = signal.trim().toUpperCase();
  if (/^\d+$/.test(s)) return s;
  return s.startsWith('SIG') ? s.slice(3) : s;
}

/** "key value" lines (cpu.stat, memory.stat, memory.events). */
export function parseKeyValues(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined && /^\d+$/.test(value)) out[key] = Number(value);
  }
  return out;
}

/** A single-number cgroup file; "max" (no limit) and missing files are 0. */
export function parseCount(text: string): number {
  const t = text.trim();
  return /^\d+$/.test(t) ? Number(t) : 0;
}

/** io.stat: "MAJ:MIN rbytes=1 wbytes=2 ..." per device. */
export function parseIoStat(text: string): { major: number; minor: number; values: Record<string, number> }[] {
  const out: { major: number; minor: number; values: Record<string, number> }[] = [];
  for (const line of text.split('\n')) {
    const [dev, ...pairs] = line.trim().split(/\s+/);
    const m = /^(\d+):(\d+)$/.exec(dev ?? '');
    if (!m) continue;
    const values: Record<string, number> = {};
    for (const pair of pairs) {
      const [k, v] = pair.split('=');
      if (k && v && /^\d+$/.test(v)) values[k] = Number(v);
    }
    out.push({ major: Number(m[1]), minor: Number(m[2]), values });
  }
  return out;
}
