/**
 * Booting an agent VM's workload: wait for the guest's agent, start the workload unless it already
 * runs (a daemon restarted between the two), and mark the VM `running`. On failure the VM is
 * `failed`, its VMM killed, and the error carries the console's last lines, which usually say why.
 */
import type { GuestIdentity } from '../agent.js';
import type { AgentSupervisor } from '../agent-supervisor.js';
import { asHypercoreError, HypercoreError, VmStateConflictError } from '../errors.js';
import type { Image } from '../image.js';
import type { Provider } from '../ports.js';
import type { VmRecords } from '../vm-records.js';
import type { VmRuntime } from '../vm-runtime.js';
import type { Vm } from '../vm.js';
import type { StepTiming } from './plan.js';

export interface WorkloadBoot {
  records: VmRecords;
  runtime: VmRuntime;
  supervisor: AgentSupervisor;
}

/**
 * `signal` aborts the wait for the agent: a stop or rm of a VM whose agent has not answered yet
 * must not wait for the boot timeout. An aborted boot leaves the VM to whoever aborted it.
 */
export async function bootWorkload(vm: Vm, provider: Provider, image: Image | undefined, boot: WorkloadBoot, signal?: AbortSignal): Promise<StepTiming[]> {
  const endpoint = provider.agentEndpoint(vm.id, boot.runtime.paths(vm.id));
  return untilRunning(vm, boot, signal, async () => {
    const { agentMs } = await boot.supervisor.startWorkload(vm, endpoint, image, signal);
    return (totalMs) => [
      { step: 'agent', ms: round(agentMs) },
      { step: 'workload', ms: round(totalMs - agentMs) },
    ];
  });
}

/**
 * A guest restored from a snapshot: its workload already runs; its agent is reconnected and told the
 * VM's own identity (clock, entropy, hostname, machine id, network) before the VM counts as running.
 */
export async function resumeWorkload(vm: Vm, provider: Provider, identity: () => GuestIdentity, boot: WorkloadBoot, signal?: AbortSignal): Promise<StepTiming[]> {
  const endpoint = provider.agentEndpoint(vm.id, boot.runtime.paths(vm.id));
  return untilRunning(vm, boot, signal, async () => {
    await boot.supervisor.resumeRestored(vm, endpoint, identity, signal);
    return (totalMs) => [{ step: 'identity', ms: round(totalMs) }];
  });
}

const round = (ms: number): number => Math.round(ms * 10) / 10;

/**
 * Runs `agentWork`, then marks the VM `running`; on failure the VM is `failed` and its VMM killed.
 * `agentWork` answers with how to split its total time into steps.
 */
async function untilRunning(vm: Vm, boot: WorkloadBoot, signal: AbortSignal | undefined, agentWork: () => Promise<(totalMs: number) => StepTiming[]>): Promise<StepTiming[]> {
  const { records, runtime, supervisor } = boot;
  const started = performance.now();
  let steps: (totalMs: number) => StepTiming[];
  try {
    steps = await agentWork();
  } catch (err) {
    if (signal?.aborted) throw new VmStateConflictError(`VM ${vm.name} was stopped or removed while its workload was booting`);
    const e = asHypercoreError(err);
    Object.assign(vm, records.current(vm.id));
    const tail = await supervisor.consoleTail(vm);
    const message = `${e.message}${tail ? `; last console output:\n${tail}` : ''}`;
    // Only if nothing else (a stop, an rm) took the VM over meanwhile.
    if (vm.state === 'starting') {
      await runtime.halt(vm, { force: true, timeoutMs: 0 }).catch((haltErr: unknown) => records.log(vm).error({ err: asHypercoreError(haltErr).message }, 'could not kill the VMM of a VM whose workload failed'));
      records.transition(vm, 'failed', { pid: undefined, error: { code: e.code, message } });
    }
    throw new HypercoreError(e.code, message, { cause: e });
  }
  records.transition(vm, 'running');
  records.log(vm).info({}, 'workload running');
  return steps(performance.now() - started);
}
