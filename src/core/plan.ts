/**
 * A plan is a list of steps, each with an undo. Running it either completes every step or undoes,
 * in reverse order, the steps that completed, so a failed create leaves nothing behind.
 */
export interface PlanStep {
  name: string;
  run(): Promise<void>;
  /** Must be safe to call when `run` only partly happened. */
  undo?(): Promise<void>;
}

export async function runPlan(steps: readonly PlanStep[], onUndoError: (step: string, err: unknown) => void): Promise<void> {
  const done: PlanStep[] = [];
  for (const step of steps) {
    try {
      // The failing step itself may have done part of its work, so it is undone too.
      done.push(step);
      await step.run();
    } catch (err) {
      for (const s of done.reverse()) {
        try {
          await s.undo?.();
        } catch (undoErr) {
          onUndoError(s.name, undoErr);
        }
      }
      throw err;
    }
  }
}
