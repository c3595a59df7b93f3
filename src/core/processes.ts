/**
 * Processes in agent VMs: exec a command in the workload's container, attach to the workload's
 * main process, resize terminals, send signals. Every call checks first that the VM runs an
 * agent and is running, so the error says what is wrong with the VM, not with the channel.
 */
import type { AgentSession, ExitStatus, ProcessIo, ProcessSpec } from './agent.js';
import { MAIN_PROCESS, type AgentSupervisor, type WorkloadLog } from './agent-supervisor.js';
import { ErrorCodes, HypercoreError, ProviderUnavailableError, VmStateConflictError } from './errors.js';
import type { VmRecords } from './vm-records.js';
import { usesAgent } from './vm-runtime.js';
import type { Vm } from './vm.js';

export class VmProcesses {
  constructor(
    private readonly records: VmRecords,
    private readonly supervisor: AgentSupervisor | undefined,
    private readonly workloadLog: WorkloadLog | undefined,
  ) {}

  /** Starts a process in a running agent VM (inside its workload's container); returns its IO. */
  async exec(ref: string, spec: ProcessSpec): Promise<{ processId: string; io: ProcessIo }> {
    const vm = this.records.find(ref);
    const session = this.session(vm);
    const { processId, io } = await session.exec(spec, vm.spec.image !== undefined);
    return { processId, io };
  }

  /**
   * The workload's main process IO: new output only, or everything from its start (`fromStart`).
   * A workload that already ended is replayed from its recorded output and exit status.
   */
  attach(ref: string, options: { fromStart: boolean }): { processId: string; io: ProcessIo } {
    const vm = this.records.find(ref);
    if (vm.workloadExit && vm.state !== 'running' && options.fromStart && this.workloadLog) {
      return { processId: MAIN_PROCESS, io: recordedWorkload(this.workloadLog.read(vm), vm.workloadExit) };
    }
    const session = this.session(vm);
    // attach follows: a slow attach client must not pause the workload (the log pump holds it).
    return { processId: MAIN_PROCESS, io: session.io(MAIN_PROCESS, options.fromStart ? 0 : this.supervisor!.loggedOffset(vm.id), { follow: true }) };
  }

  async resize(ref: string, processId: string, rows: number, cols: number): Promise<void> {
    await this.session(this.records.find(ref)).resize(processId, rows, cols);
  }

  async signal(ref: string, processId: string, signal: string): Promise<void> {
    await this.session(this.records.find(ref)).signal(processId, signal);
  }

  /** The agent session of a running agent VM, or an error that says what is wrong with the VM. */
  session(vm: Vm): AgentSession {
    if (!usesAgent(vm.spec)) throw new HypercoreError(ErrorCodes.agentUnavailable, `VM ${vm.name} boots its own drive and runs no Hypercore agent; exec and attach need a VM created from an image (ref without drive)`);
    if (!this.supervisor) throw new ProviderUnavailableError('this hypercored cannot run image workloads (no agent support configured)');
    if (vm.state === 'paused') throw new VmStateConflictError(`VM ${vm.name} is paused; resume it first (hypercore resume ${vm.name})`);
    if (vm.state !== 'running') throw new VmStateConflictError(`VM ${vm.name} is ${vm.state}; it must be running`);
    return this.supervisor.session(vm);
  }
}

/** A finished workload's IO, replayed from its recorded output. */
function recordedWorkload(output: AsyncIterable<Uint8Array>, exit: ExitStatus): ProcessIo {
  let offset = 0;
  return {
    write: async () => {
      throw new VmStateConflictError('the workload has exited; it reads no more input');
    },
    closeStdin: async () => undefined,
    close: () => undefined,
    async *[Symbol.asyncIterator]() {
      for await (const data of output) {
        yield { kind: 'output' as const, fd: 1 as const, data, offset };
        offset += data.length;
      }
      yield { kind: 'exit' as const, status: exit };
    },
  };
}
