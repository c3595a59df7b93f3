/** Spawn traces of a bench's VMs: each VM's last start (`inspect --json`), summarised step by step. */
import type { StartTrace } from '../../src/core/vm.js';
import { fmtMs } from './format.js';
import { median } from './stats.js';

/** Collects the step timings of several starts. */
export class TraceSummary {
  private readonly steps = new Map<string, number[]>();
  private count = 0;

  add(trace: StartTrace | undefined): void {
    if (!trace) return;
    this.count++;
    for (const s of trace.steps) this.steps.set(s.step, [...(this.steps.get(s.step) ?? []), s.ms]);
  }

  /** `step median` for each step, in the order of the plan. */
  line(): string {
    if (this.count === 0) return '(no traces)';
    return `${[...this.steps].map(([step, ms]) => `${step} ${fmtMs(median(ms))}`).join(', ')} (medians of ${this.count})`;
  }
}
