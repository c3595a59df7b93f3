/**
 * The host's side of VMs run by an agent: connect (and reconnect) to each guest's agent, start the
 * workload, copy the workload's output into the VM's log, and power the VM off when the workload
 * ends, as a container stops when its main process exits.
 */
import type { AgentConnector, AgentEndpoint, AgentInfo, AgentSession, ExitStatus, GuestIdentity, ProcessIo, ProcessSpec } from './agent.js';
import { ErrorCodes, HypercoreError } from './errors.js';
import type { Image } from './image.js';
import { guestFiles } from './metadata.js';
import type { Logger } from './ports.js';
import type { Vm } from './vm.js';

export const MAIN_PROCESS = 'main';
/** Under TCG a guest needs 5–8 s to run its agent; leave room for a loaded host. */
export const AGENT_BOOT_TIMEOUT_MS = 120_000;
/** A restored guest's agent is already running: it reads the handshake as soon as the guest resumes. */
const RESTORED_AGENT_TIMEOUT_MS = 30_000;

export interface WorkloadLog {
  /**
   * Appends workload output to the VM's log (the console log) and to its workload-only output, and
   * records `nextOffset` (the output offset just past `data`) as where copying resumes.
   */
  append(vm: Vm, data: Uint8Array, nextOffset: number): Promise<void>;
  /** Appends a line about the workload to the VM's log only. */
  note(vm: Vm, line: string): Promise<void>;
  /** The workload's output so far (for `run` after the VM already stopped). */
  read(vm: Vm): AsyncIterable<Uint8Array>;
  /**
   * The output offset recorded by the last `append`: where copying resumes after a daemon restart. A
   * stored counter: the logs are capped and rotated, so their size says nothing about it.
   */
  resumeOffset(vm: Vm): Promise<number>;
  /** Console output so far, for error messages. */
  tail(vm: Vm, bytes: number): Promise<string>;
}

interface Tracked {
  session: AgentSession;
  /** Output offset of the main process already copied to the log. */
  logged: number;
}

/** Image Env, then overrides; a key set twice keeps the later value (execve would keep both). */
export function mergeEnv(base: readonly string[], overrides: readonly string[]): string[] {
  const byKey = new Map<string, string>();
  for (const entry of [...base, ...overrides]) byKey.set(entry.split('=', 1)[0]!, entry);
  return [...byKey.values()];
}

/** The workload's process: the image's entrypoint + cmd, with the spec's overrides. */
export function workloadProcess(vm: Vm, image: Image | undefined): ProcessSpec {
  const w = vm.spec.workload;
  const entrypoint = w?.entrypoint ?? image?.config.entrypoint ?? [];
  const cmd = w?.cmd ?? (w?.entrypoint ? [] : (image?.config.cmd ?? []));
  const args = [...entrypoint, ...cmd];
  if (args.length === 0) throw new HypercoreError(ErrorCodes.invalidArgument, `image ${vm.spec.image ?? ''} defines no command; set [workload] command in hac.toml`);
  const env = mergeEnv(image?.config.env ?? [], w?.env ?? []);
  return {
    args,
    env,
    ...((w?.workdir ?? image?.config.workingDir) ? { cwd: (w?.workdir ?? image?.config.workingDir)! } : {}),
    ...((w?.user ?? image?.config.user) ? { user: (w?.user ?? image?.config.user)! } : {}),
    terminal: w?.tty ?? false,
  };
}

export class AgentSupervisor {
  private readonly tracked = new Map<string, Tracked>();
  /** Channels opened before a restored guest resumed, until resumeRestored takes them. */
  private readonly early = new Map<string, { session: Promise<AgentSession>; cancel: AbortController }>();

  constructor(
    private readonly connector: AgentConnector,
    private readonly log: WorkloadLog,
    private readonly logger: Logger,
    /** Called when the workload's main process ended (the VM should power off). */
    private readonly onWorkloadExit: (vmId: string, status: ExitStatus) => void,
    private readonly bootTimeoutMs = AGENT_BOOT_TIMEOUT_MS,
  ) {}

  session(vm: Vm): AgentSession {
    const t = this.tracked.get(vm.id);
    if (!t) throw new HypercoreError(ErrorCodes.agentUnavailable, `the agent of VM ${vm.name} is not connected (yet)`);
    return t.session;
  }

  /** Boot path: wait for the agent, start the workload, begin copying its output. Resolves to how long the agent took to answer. */
  async startWorkload(vm: Vm, endpoint: AgentEndpoint, image: Image | undefined, signal?: AbortSignal): Promise<{ agentMs: number }> {
    // A pod VM has no workload of its own: its containers come later, through the pod service.
    if (vm.spec.pod) {
      const started = performance.now();
      await this.connect(vm, endpoint, signal, this.bootTimeoutMs, (s) => this.hello(vm, s));
      return { agentMs: performance.now() - started };
    }
    const process = workloadProcess(vm, image);
    const w = vm.spec.workload;
    const m = vm.spec.metadata;
    const request = {
      process,
      imageDiskSerial: 'image',
      ...(vm.disks?.some((d) => d.name === 'scratch') ? { scratchDiskSerial: 'scratch' } : {}),
      ...(w?.memoryLimitMib ? { memoryLimitBytes: w.memoryLimitMib * 1024 * 1024 } : {}),
      ...(w?.pidsLimit ? { pidsLimit: w.pidsLimit } : {}),
      hostname: vm.name,
      ...(m ? { metadata: { values: m.values, secrets: m.secrets }, files: guestFiles(m), sshAuthorizedKeys: m.sshAuthorizedKeys } : {}),
    };
    const started = performance.now();
    // StartWorkload goes right behind Hello, not after its answer: under TCG a round trip to a
    // booting guest costs hundreds of ms. The agent answers Hello first (requests are handled in
    // order) and starts a workload once per boot, so when Hello says an earlier daemon already
    // started it (it died before recording that), this request's refusal is expected and ignored.
    let startFailure: { err: unknown } | undefined;
    const [{ info, answeredAt }] = await this.connect(vm, endpoint, signal, this.bootTimeoutMs, (s) =>
      Promise.all([
        this.hello(vm, s).then((answer) => ({ info: answer, answeredAt: performance.now() })),
        s.startWorkload(request).catch((err: unknown) => void (startFailure = { err })),
      ]),
    );
    if (startFailure && !info.workloadStarted) {
      this.forget(vm.id);
      throw startFailure.err;
    }
    this.pumpLogs(vm);
    return { agentMs: answeredAt - started };
  }

  /**
   * Restore path: the guest resumed from a snapshot, its workload running. Its agent is told the
   * VM's identity (`identity` is called once the channel's handshake is done) before anything else,
   * then its metadata, then the workload's output is copied into this VM's log.
   */
  async resumeRestored(vm: Vm, endpoint: AgentEndpoint, identity: () => GuestIdentity, signal?: AbortSignal): Promise<void> {
    // A channel opened by openEarly was connected before the guest ran: its handshake is under way.
    // No Hello: what it tells is known (the snapshot's guest runs the workload), and under TCG each
    // call costs a just-restored guest, whose every code path is translated anew, tens of ms; the
    // Restored call's answer shows the agent is there. The identity is made only once the channel
    // is open: its host time must not age while the agent is reached.
    const session = await this.connect(
      vm,
      endpoint,
      signal,
      RESTORED_AGENT_TIMEOUT_MS,
      async (s) => {
        await s.restored(identity());
        return s;
      },
      { early: true },
    );
    // The guest serves what the source's guest held when the snapshot was taken; this VM's record is
    // what `metadata get` shows and what its next start sends, so the guest gets exactly that.
    const m = vm.spec.metadata;
    if (m) await session.setMetadata({ values: m.values, secrets: m.secrets });
    // A snapshot is only taken of a running VM, whose workload was started (its output and exit, if it
    // ended since, are in the agent's table and go to this VM's log).
    this.pumpLogs(vm);
  }

  /**
   * Restore path, before the guest resumes: opens its agent channel now and leaves the handshake to
   * complete when the guest runs; resumeRestored goes on with it. A virtio-serial port tells the
   * guest when its host end connects or goes away; connected before the guest resumes, the port
   * looks to it as it was when the snapshot was taken (connected), so the agent never sees a
   * disconnect and reads the new host's handshake at once, instead of noticing an end of input and
   * polling for the next host. Resolves once the socket is connected (at once for endpoints other
   * than `unix`, where there is nothing to open early); a failure after that surfaces in resumeRestored.
   */
  async openEarly(vm: Vm, endpoint: AgentEndpoint): Promise<void> {
    this.forget(vm.id);
    if (endpoint.kind !== 'unix') return;
    let opened!: () => void;
    const open = new Promise<void>((resolve) => (opened = resolve));
    const cancel = new AbortController();
    const session = this.connector.connect(endpoint, { timeoutMs: RESTORED_AGENT_TIMEOUT_MS, signal: cancel.signal, onOpen: () => opened() });
    const early = { session, cancel };
    this.early.set(vm.id, early);
    // Nobody may be waiting yet (the restore can still fail before resumeRestored).
    session.catch(() => {
      if (this.early.get(vm.id) === early) this.early.delete(vm.id);
    });
    await Promise.race([open, session.then(() => undefined)]);
  }

  /** Restart path: reconnect to a running guest; the workload keeps running there. */
  async reattach(vm: Vm, endpoint: AgentEndpoint): Promise<void> {
    await this.connect(vm, endpoint, undefined, 15_000, (s) => this.hello(vm, s));
    if (vm.spec.pod) return;
    // Resume after what the previous daemon recorded, so buffered output is not logged twice.
    this.tracked.get(vm.id)!.logged = await this.log.resumeOffset(vm).catch(() => 0);
    this.pumpLogs(vm);
  }

  /** Whether the VM's agent is connected. */
  connected(vmId: string): boolean {
    return this.tracked.has(vmId);
  }

  forget(vmId: string): void {
    this.tracked.get(vmId)?.session.close();
    this.tracked.delete(vmId);
    const early = this.early.get(vmId);
    this.early.delete(vmId);
    early?.cancel.abort();
    early?.session.then((s) => s.close()).catch(() => undefined); // not lost: the channel of a VM given up on; its restore reports its own failure
  }

  forgetAll(): void {
    for (const id of new Set([...this.tracked.keys(), ...this.early.keys()])) this.forget(id);
  }

  /** Where new output of the main process starts, for `attach` (which shows only new output). */
  loggedOffset(vmId: string): number {
    return this.tracked.get(vmId)?.logged ?? 0;
  }

  async consoleTail(vm: Vm): Promise<string> {
    return (await this.log.tail(vm, 2048).catch(() => '')).trim();
  }

  /**
   * Connects to the VM's agent and makes `first`'s calls, whose answers show the agent is there (Hello,
   * with StartWorkload right behind it at boot; Restored alone for a restored guest). Then the VM's
   * session is tracked; `first`'s result is returned. With `early`, the channel openEarly opened is
   * used if there is one.
   */
  private async connect<T>(
    vm: Vm,
    endpoint: AgentEndpoint,
    signal: AbortSignal | undefined,
    timeoutMs: number,
    first: (session: AgentSession) => Promise<T>,
    options: { early?: boolean } = {},
  ): Promise<T> {
    // Only a restore goes on with the channel openEarly opened; any other connect closes it (forget).
    const early = options.early ? this.early.get(vm.id) : undefined;
    if (early) this.early.delete(vm.id);
    this.forget(vm.id);
    // An early channel's wait ends with this caller's too.
    const stopEarly = (): void => early?.cancel.abort();
    if (early && signal?.aborted) stopEarly();
    signal?.addEventListener('abort', stopEarly, { once: true });
    let session: AgentSession;
    try {
      session = await (early?.session ?? this.connector.connect(endpoint, { timeoutMs, ...(signal ? { signal } : {}) }));
    } finally {
      signal?.removeEventListener('abort', stopEarly);
    }
    let result: T;
    try {
      result = await first(session);
    } catch (err) {
      session.close();
      throw err;
    }
    this.tracked.set(vm.id, { session, logged: 0 });
    return result;
  }

  /** Hello, logged with what the agent tells. */
  private async hello(vm: Vm, session: AgentSession): Promise<AgentInfo> {
    const info = await session.hello();
    this.logger.child({ vmId: vm.id }).info({ agentVersion: info.agentVersion, uptimeMs: info.uptimeMs, workloadStarted: info.workloadStarted }, 'agent connected');
    return info;
  }

  /** Copies the main process's output to the VM log until it exits or the session ends. */
  private pumpLogs(vm: Vm): void {
    const tracked = this.tracked.get(vm.id);
    if (!tracked) return;
    let io: ProcessIo;
    try {
      io = tracked.session.io(MAIN_PROCESS, tracked.logged);
    } catch {
      return;
    }
    void (async () => {
      try {
        for await (const event of io) {
          if (event.kind === 'output') {
            await this.log.append(vm, event.data, event.offset + event.data.length);
            tracked.logged = event.offset + event.data.length;
          } else {
            const s = event.status;
            await this.log.note(vm, `[hypercore] workload exited with ${s.signal ? `signal ${s.signal}` : `code ${s.exitCode}`}\n`);
            this.onWorkloadExit(vm.id, s);
            return;
          }
        }
      } catch (err) {
        this.logger.child({ vmId: vm.id }).debug({ err: String(err) }, 'workload log stream ended');
      }
    })();
  }
}
