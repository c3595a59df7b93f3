/** Step "record": the VM's record exists (state `creating`) and a `created` event is out. */
import type { Step } from '../plan.js';
import type { PlanContext } from '../context.js';

export const recordStep: Step<PlanContext> = {
  name: 'record',
  isDone: async ({ vm, services }) => services.records.exists(vm.id),
  run: async ({ vm, services }) => services.records.insert(vm),
  undo: async ({ vm, services }) => services.records.forget(vm),
};
