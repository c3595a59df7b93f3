/**
 * The agent's process table: every process started through the API, running or finished, by id.
 * Finished processes are kept (with their output and exit status) for a while so a host that was
 * away when they exited can still collect them; the workload's own process is always "main".
 */
import { randomBytes } from 'node:crypto';
import { Code, TtrpcError } from '../ttrpc/index.js';
import { hostLaunch, type Launch } from './launch.js';
import { silentLog, type Log } from './log.js';
import { DEFAULT_OUTPUT_BYTES } from './output-buffer.js';
import { ManagedProcess, parseSignal, type ExitInfo } from './process.js';
import type { ProcessInfo, ProcessSpec } from './protocol/messages.js';

/** The workload's process id. */
export const MAIN_PROCESS_ID = 'main';

export interface ProcessTableOptions {
  /** Output ring size per process (default 1 MiB). */
  bufferBytes?: number;
  /** How long a new process's output waits for its first holding reader (default 5 s). */
  firstReaderGraceMs?: number;
  /** Finished processes kept at most (default 100, oldest dropped first). */
  keepFinished?: number;
  /** How long a finished process is kept (default 10 minutes). */
  finishedTtlMs?: number;
  log?: Log;
}

/** Builds the launch of a process inside the workload's container (set by the workload once it runs). */
export type WorkloadLauncher = (spec: ProcessSpec) => Launch | Promise<Launch>;

/** Options of {@link ProcessTable.spawn}. */
export interface SpawnOptions {
  inWorkload?: boolean;
}

/** All processes the agent started. */
export class ProcessTable {
  private readonly procs = new Map<string, ManagedProcess>();
  private readonly bufferBytes: number;
  private readonly firstReaderGraceMs: number | undefined;
  private readonly keepFinished: number;
  private readonly ttlMs: number;
  private readonly log: Log;
  private workloadLauncher: WorkloadLauncher | undefined;

  constructor(options: ProcessTableOptions = {}) {
    this.bufferBytes = options.bufferBytes ?? DEFAULT_OUTPUT_BYTES;
    this.firstReaderGraceMs = options.firstReaderGraceMs;
    this.keepFinished = options.keepFinished ?? 100;
    this.ttlMs = options.finishedTtlMs ?? 10 * 60 * 1000;
    this.log = options.log ?? silentLog;
  }

  /** Installs (or removes) how processes are started inside the workload. */
  setWorkloadLauncher(launcher: WorkloadLauncher | undefined): void {
    this.workloadLauncher = launcher;
  }

  /**
   * Starts a process from a client's spec: in the VM, or with `inWorkload` through `crun exec` in
   * the workload's container. A missing command does not throw: the process exits 127.
   */
  async spawn(spec: ProcessSpec, options: SpawnOptions = {}): Promise<ManagedProcess> {
    let launch: Launch;
    if (options.inWorkload) {
      if (!this.workloadLauncher) throw new TtrpcError(Code.FAILED_PRECONDITION, 'no workload is running (StartWorkload first)');
      launch = await this.workloadLauncher(spec);
    } else {
      launch = hostLaunch(spec);
    }
    return this.start(launch);
  }

  /** Starts a prepared launch under `id` (default: a new random id). A finished process of that id is replaced. */
  async start(launch: Launch, id: string = newId()): Promise<ManagedProcess> {
    const existing = this.procs.get(id);
    if (existing?.running) throw new TtrpcError(Code.ALREADY_EXISTS, `process ${id} is already running`);
    this.procs.delete(id);
    const output = { bufferBytes: this.bufferBytes, ...(this.firstReaderGraceMs !== undefined ? { firstReaderGraceMs: this.firstReaderGraceMs } : {}) };
    // Only the workload's start and end go to the log (the serial console): under emulation a
    // console line costs a few ms of the one vCPU, twice per exec.
    const logged = id === MAIN_PROCESS_ID;
    const proc = await ManagedProcess.start(id, launch, output, (p) => {
      if (logged) this.log(`process ${p.id} exited: code ${p.exit?.exitCode}${p.exit?.signal ? ` (${p.exit.signal})` : ''}`);
      this.prune();
    });
    this.procs.set(id, proc);
    if (logged) this.log(`process ${id} started: pid ${proc.pid}${launch.inWorkload ? ' (workload)' : ''} ${JSON.stringify(launch.displayArgs).slice(0, 200)}`);
    this.prune();
    return proc;
  }

  /** The process, or NOT_FOUND. */
  get(id: string | undefined): ManagedProcess {
    const proc = id ? this.procs.get(id) : undefined;
    if (!proc) throw new TtrpcError(Code.NOT_FOUND, `process ${id ?? ''} not found`);
    return proc;
  }

  /** The process, or undefined. */
  find(id: string): ManagedProcess | undefined {
    return this.procs.get(id);
  }

  /** Forgets a finished process (a running one stays). */
  remove(id: string): void {
    if (this.procs.get(id)?.running === false) this.procs.delete(id);
  }

  /** ListProcesses: running and kept finished processes, in start order. */
  list(): ProcessInfo[] {
    this.prune();
    return [...this.procs.values()].map((p) => p.info());
  }

  /** Sends a named signal ("SIGTERM", "TERM" or "15"). */
  async signal(id: string, signal: string): Promise<void> {
    const proc = this.get(id);
    await proc.signal(parseSignal(signal));
  }

  /** Resizes a terminal process. */
  resize(id: string, rows: number, cols: number): void {
    this.get(id).resize(rows, cols);
  }

  /** Waits for the process to exit (rejects when `signal` aborts). */
  wait(id: string, signal?: AbortSignal): Promise<ExitInfo> {
    return this.get(id).wait(signal);
  }

  /** Number of processes still running. */
  get runningCount(): number {
    let n = 0;
    for (const p of this.procs.values()) if (p.running) n++;
    return n;
  }

  /** Drops finished processes past their time or beyond the count (never "main": it is the workload's status). */
  private prune(): void {
    const now = Date.now();
    const finished: ManagedProcess[] = [];
    for (const p of this.procs.values()) {
      if (p.running || p.id === MAIN_PROCESS_ID) continue;
      if (now - (p.finishedAt ?? now) > this.ttlMs) this.procs.delete(p.id);
      else finished.push(p);
    }
    finished.sort((a, b) => (a.finishedAt ?? 0) - (b.finishedAt ?? 0));
    for (const p of finished.slice(0, Math.max(0, finished.length - this.keepFinished))) this.procs.delete(p.id);
  }
}

function newId(): string {
  return randomBytes(6).toString('hex');
}
