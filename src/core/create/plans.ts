/** The plans: which steps make a new VM, and which boot an existing one again. */
import type { PlanContext } from './context.js';
import type { Step } from './plan.js';
import { announceStep } from './steps/announce.js';
import { directoriesStep } from './steps/directories.js';
import { imageDiskStep } from './steps/image-disk.js';
import { launchStep } from './steps/launch.js';
import { networkStep } from './steps/network.js';
import { recordStep } from './steps/record.js';

/** A new VM: each step undone in reverse when a later one fails, so nothing is left behind. */
export const createPlan: readonly Step<PlanContext>[] = [recordStep, directoriesStep, networkStep, imageDiskStep, launchStep, announceStep];

/**
 * An existing VM booted again (`start`): the same launch, but a failure keeps the VM (as `failed`)
 * with its address lease, so the network step is not undone.
 */
export const startPlan: readonly Step<PlanContext>[] = [{ ...networkStep, undo: async () => undefined }, launchStep, announceStep];
