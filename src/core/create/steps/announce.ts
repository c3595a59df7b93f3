/**
 * Step "announce": the VM is `running` (a drive VM) or `starting` (an agent VM, until its
 * workload runs), and its VMM is watched so an exit nobody asked for is noticed.
 */
import type { Step } from '../plan.js';
import type { PlanContext } from '../context.js';

export const announceStep: Step<PlanContext> = {
  name: 'announce',
  run: async ({ vm, agent, services }) => {
    const next = agent ? 'starting' : 'running';
    if (vm.state !== next) services.records.transition(vm, next);
    services.runtime.watch(vm, (exit) => services.onVmmExit(vm.id, exit));
  },
};
