/**
 * Number formatting and the fixed-width result lines the benches print (`label  min X  median Y ...`).
 */
import { summarize } from './stats.js';

const MIB = 1024 * 1024;

/** Milliseconds with a precision that suits the size: `1.23 ms`, `45.6 ms`, `789 ms`. */
export const fmtMs = (v: number): string => (v < 10 ? `${v.toFixed(2)} ms` : v < 100 ? `${v.toFixed(1)} ms` : `${Math.round(v)} ms`);

/** Whole milliseconds: `789 ms`. */
export const wholeMs = (v: number): string => `${Math.round(v)} ms`;

/** A byte count in MiB with one decimal: `12.3 MiB`. */
export const fmtMiB = (bytes: number): string => `${(bytes / MIB).toFixed(1)} MiB`;

/** `v` with `digits` decimals, or `n/a` when it is not a finite number. */
export const fixed = (v: number, digits: number): string => (Number.isFinite(v) ? v.toFixed(digits) : 'n/a');

/** Named values as `name value` columns, each value formatted and right-aligned to `width`: `p50   1.23 ms  p99   4.56 ms`. */
export function columns(cols: readonly (readonly [name: string, value: number])[], format: (v: number) => string, width: number, separator = '  '): string {
  return cols.map(([name, v]) => `${name} ${format(v).padStart(width)}`).join(separator);
}

export interface MinMedianMaxFormat {
  /** The label is padded to this width. */
  labelWidth: number;
  /** Each formatted value is right-aligned to this width. */
  width: number;
  format: (v: number) => string;
  /** What stands between the max and `(n=N)`: a space by default, or e.g. ` MiB/s `. */
  beforeCount?: string;
  /** Printed after the label instead of the numbers when there are no samples; without it, NaNs are printed. */
  empty?: string;
}

/** `label  min X  median Y  max Z (n=N)`. */
export function minMedianMaxLine(label: string, values: readonly number[], f: MinMedianMaxFormat): string {
  if (values.length === 0 && f.empty !== undefined) return `${label.padEnd(f.labelWidth)} ${f.empty}`;
  const s = summarize(values);
  const cols = columns([['min', s.min], ['median', s.median], ['max', s.max]], f.format, f.width);
  return `${label.padEnd(f.labelWidth)} ${cols}${f.beforeCount ?? ' '}(n=${s.n})`;
}
