/**
 * A plan is a list of named steps. Each step may say it is already done (`isDone`), so running a
 * plan again (a daemon restarted in the middle of a create) resumes where the work stopped
 * instead of repeating it; each has an undo, so a plan that fails undoes, in reverse order, every
 * step it reached, and a failed create leaves nothing behind. The runner times every step: the
 * trace shows where a spawn spends its time.
 */
export interface Step<C> {
  name: string;
  /** Whether the step's work is already there (checked before `run`). */
  isDone?(ctx: C): Promise<boolean>;
  run(ctx: C): Promise<void>;
  /** Must be safe when `run` only partly happened, or did not happen at all. */
  undo?(ctx: C): Promise<void>;
}

import type { StepTiming } from '../vm.js';

export type { StepTiming };

export interface PlanHooks {
  onUndoError(step: string, err: unknown): void;
  /** Called after each step (or skip), for logs and traces. */
  onStep?(timing: StepTiming): void;
}

export async function runPlan<C>(steps: readonly Step<C>[], ctx: C, hooks: PlanHooks): Promise<StepTiming[]> {
  const reached: Step<C>[] = [];
  const timings: StepTiming[] = [];
  for (const step of steps) {
    const started = performance.now();
    // The failing step itself may have done part of its work, so it is undone too.
    reached.push(step);
    try {
      const done = (await step.isDone?.(ctx)) === true;
      if (!done) await step.run(ctx);
      const timing: StepTiming = { step: step.name, ms: Math.round((performance.now() - started) * 10) / 10, ...(done ? { done: true as const } : {}) };
      timings.push(timing);
      hooks.onStep?.(timing);
    } catch (err) {
      for (const s of reached.reverse()) {
        try {
          await s.undo?.(ctx);
        } catch (undoErr) {
          hooks.onUndoError(s.name, undoErr);
        }
      }
      throw err;
    }
  }
  return timings;
}
