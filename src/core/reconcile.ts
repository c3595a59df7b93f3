/**
 * Reconcile: after a daemon (re)start, bring each record in line with what is running. The
 * daemon may have died at any point of any operation; each state says which operation, and the
 * VMM's liveness (by pid, else by the provider's pidfile) says how far it got:
 * - `creating`: the create resumes (its plan skips the steps already done);
 * - `deleting`: the delete is finished;
 * - `stopping`: the stop is finished, whether or not the VMM still runs;
 * - `starting` / `running` with a live VMM: adopted and watched again (an agent VM's workload is
 *   booted if it never started, else its agent reconnected);
 * - a VMM that is gone: its leftovers are released and the VM is `stopped` with the reason.
 * What takes long (a resumed pull, an agent handshake) runs after reconcile returns, so the API
 * comes up at once.
 */
import { asHypercoreError } from './errors.js';
import { hasVmm } from './lifecycle.js';
import type { VmRecords } from './vm-records.js';
import { usesAgent, type VmRuntime } from './vm-runtime.js';
import type { Vm } from './vm.js';

/** What is left to do for a VM after its record was brought in line; runs in the background. */
export type Followup = 'resume-create' | 'finish-delete' | 'finish-stop' | 'boot-workload' | 'reattach-agent' | 'watch';

export async function reconcileVm(vm: Vm, records: VmRecords, runtime: VmRuntime): Promise<Followup | undefined> {
  const log = records.log(vm);
  if (vm.state === 'creating') return 'resume-create';
  if (vm.state === 'deleting') return 'finish-delete';
  if (vm.state === 'stopping') return 'finish-stop';
  if (!hasVmm(vm.state)) return undefined;
  const provider = runtime.providerOf(vm);
  const found = await provider.status(vm.id, runtime.paths(vm.id), vm.pid).catch((err: unknown) => {
    log.warn({ err: asHypercoreError(err).message }, 'could not ask the provider about the VMM; treating it as gone');
    return { status: 'gone' as const, pid: undefined };
  });
  if (found.status !== 'gone') {
    // The pid may be unknown: the daemon died in `start` after the VMM was launched.
    if (found.pid !== undefined && found.pid !== vm.pid) records.save(vm, { pid: found.pid });
    log.info({ vmmPid: vm.pid, state: vm.state }, 'adopted running VM');
    await runtime.restoreNetwork(vm);
    if (vm.state === 'starting' && !usesAgent(vm.spec)) records.transition(vm, 'running');
    // What the VMM says wins: a pause or resume may have happened while the daemon was down.
    if (found.status === 'paused' && vm.state === 'running') records.transition(vm, 'paused');
    if (found.status === 'running' && vm.state === 'paused') records.transition(vm, 'running');
    if (!usesAgent(vm.spec)) return 'watch';
    if (vm.state === 'paused') return 'watch'; // its agent is reconnected on resume
    return vm.state === 'starting' ? 'boot-workload' : 'reattach-agent';
  }
  await provider.kill(vm.id, runtime.paths(vm.id), vm.pid).catch((err: unknown) => log.warn({ err: asHypercoreError(err).message }, 'kill of a VMM found gone failed'));
  await runtime.released(vm);
  const error = { code: 'HC_VMM_EXITED', message: `the VMM (pid ${vm.pid ?? 'unknown'}) exited while hypercored was not running` };
  records.forceState(vm, 'stopped', { pid: undefined, error });
  log.warn(error, 'VM marked stopped');
  return undefined;
}
