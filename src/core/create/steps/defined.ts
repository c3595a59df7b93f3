/** Step "defined": a VM made without booting is `created`; `start` boots it later. */
import type { Step } from '../plan.js';
import type { PlanContext } from '../context.js';

export const definedStep: Step<PlanContext> = {
  name: 'defined',
  run: async ({ vm, services }) => {
    if (vm.state !== 'created') services.records.transition(vm, 'created', { defineOnly: undefined });
  },
};
