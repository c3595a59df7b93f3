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

/**
 * The directories of a VM defined without booting: only an image VM needs them yet (its disk
 * goes into the state dir); the others get theirs when they start. Defining many VMs then costs
 * no directory per VM, and removing one that never ran has nothing on disk to remove.
 */
export const definedDirectoriesStep: Step<PlanContext> = {
  ...directoriesStep,
  run: async (ctx) => {
    if (ctx.vm.spec.image !== undefined) await directoriesStep.run(ctx);
  },
};

/**
 * The directories of a VM that starts: a defined VM may have none yet, and the run dir is gone
 * after a host reboot (it is a tmpfs). A failed start keeps the VM, so they stay.
 */
export const startDirectoriesStep: Step<PlanContext> = { ...directoriesStep, undo: async () => undefined };
