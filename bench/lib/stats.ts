/**
 * Summary statistics over a bench's samples (ms, MiB/s, ...). Inputs are never modified; an empty
 * input gives NaN or undefined entries rather than an error, so callers check for samples first.
 */

/** A copy sorted ascending. */
export function sorted(values: readonly number[]): number[] {
  return [...values].sort((a, b) => a - b);
}

/** The middle value; with an even count, the mean of the two middle ones. */
export function median(values: readonly number[]): number {
  const s = sorted(values);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Nearest-rank percentile, `q` from 0 to 1 (with 20 samples, p99 is the largest). */
export function percentile(values: readonly number[], q: number): number {
  const s = sorted(values);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

export interface Summary {
  min: number;
  median: number;
  max: number;
  mean: number;
  n: number;
}

/** Min, median, max, mean and count of the samples. */
export function summarize(values: readonly number[]): Summary {
  const s = sorted(values);
  return { min: s[0]!, median: median(s), max: s.at(-1)!, mean: s.reduce((x, y) => x + y, 0) / s.length, n: s.length };
}
