/** Step "directories": the VM's state dir (console log, disks) and run dir (sockets, pidfile). */
import type { Step } from '../plan.js';
import type { PlanContext } from '../context.js';

export const directoriesStep: Step<PlanContext> = {
  name: 'directories',
  // Creating them is idempotent, so there is no separate check.
  run: async ({ vm, services }) => void (await services.files.create(vm.id)),
  // The image's disk lives in the state dir, so this also removes what the image-disk step made.
  undo: async ({ vm, services }) => services.files.remove(vm.id),
};
