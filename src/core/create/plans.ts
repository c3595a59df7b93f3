/** The plans: which steps make a new VM, and which boot an existing one again. */
import type { PlanContext } from './context.js';
import type { Step } from './plan.js';
import { announceStep } from './steps/announce.js';
import { definedDirectoriesStep, directoriesStep, startDirectoriesStep } from './steps/directories.js';
import { imageDiskStep } from './steps/image-disk.js';
import { launchStep } from './steps/launch.js';
import { networkStep } from './steps/network.js';
import { recordStep } from './steps/record.js';
import { definedStep } from './steps/defined.js';
import { restoreStep } from './steps/restore.js';
import { snapshotDisksStep } from './steps/snapshot-disks.js';

/** A new VM: each step undone in reverse when a later one fails, so nothing is left behind. */
export const createPlan: readonly Step<PlanContext>[] = [recordStep, directoriesStep, networkStep, imageDiskStep, launchStep, announceStep];

/**
 * A VM defined without booting (`create`, or `start: false` in the API): its record, and for an
 * image VM its directories and image disk; no TAP or lease (those come with `start`), no VMM.
 */
export const definePlan: readonly Step<PlanContext>[] = [recordStep, definedDirectoriesStep, imageDiskStep, definedStep];

/**
 * An existing VM booted (`start`): its directories, then the same launch, but a failure keeps the
 * VM (as `failed`) with its address lease, so the network step is not undone.
 */
export const startPlan: readonly Step<PlanContext>[] = [startDirectoriesStep, { ...networkStep, undo: async () => undefined }, launchStep, announceStep];

/**
 * A new VM resumed from a snapshot: its own copies of the snapshot's writable disks, its own TAP,
 * MAC and lease, and a VMM that restores the guest instead of booting it. Undone as a create is.
 */
export const restorePlan: readonly Step<PlanContext>[] = [recordStep, directoriesStep, snapshotDisksStep, networkStep, restoreStep, announceStep];
