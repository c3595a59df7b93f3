/**
 * Turns validation findings into `ValidationIssue`s that say where (`file:line:column` or the
 * CLI flag), which key, which value and what is allowed, and gathers them into one error so a
 * user fixes every problem in one pass instead of one per run.
 */
import type * as z from 'zod';
import { ConfigInvalidError, type ValidationIssue } from '../core/errors.js';
import { formatKeyPath, getAt, isTable, type TomlTree } from './key-path.js';
import type { KeyLocations, Position } from './locator.js';
import { suggestKeys } from './suggest.js';
import { formatTomlValue, plainValue } from './toml-values.js';

/** What the collector needs to describe a problem. */
export interface IssueContext {
  /** The file name as the user gave it; locations are `file:line:column`. */
  file: string;
  /** The parsed file with overrides applied: where reported values come from. */
  tree: TomlTree;
  locations: KeyLocations;
  /** Paths set by CLI flags, and the flag that set each. */
  flags: ReadonlyMap<string, string>;
  /** Every key and table the format knows, as segments (for suggestions). */
  knownKeys: readonly (readonly string[])[];
}

interface Problem {
  issue: ValidationIssue;
  /** File problems sort by position, flag problems after them. */
  order: [number, number, number];
}

/** Collects problems; `error()` returns them as one ConfigInvalidError, or undefined if none. */
export class IssueCollector {
  private readonly problems: Problem[] = [];
  private readonly seen = new Set<string>();

  constructor(private readonly ctx: IssueContext) {}

  /** Adds zod's findings; only the first problem of each key is kept, they all say the same. */
  addZodIssues(issues: readonly z.core.$ZodIssue[]): void {
    for (const issue of issues) {
      const segments = issue.path.map(String);
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys) this.addUnknownKey([...segments, key]);
      } else if (getAt(this.ctx.tree, segments) === undefined) {
        this.addMissingKey(segments);
      } else {
        this.addBadValue(segments, issue.message);
      }
    }
  }

  /** `key = value: <allowed>`, located at the value (or the flag that set it). */
  addBadValue(segments: readonly string[], allowed: string): void {
    const path = formatKeyPath(segments);
    const value = getAt(this.ctx.tree, segments);
    this.add(path, `${path} = ${formatTomlValue(value)}: ${allowed}`, this.where(path, 'value'), plainValue(value));
  }

  private addUnknownKey(segments: readonly string[]): void {
    const path = formatKeyPath(segments);
    const value = getAt(this.ctx.tree, segments);
    const kind = isTable(value) ? 'table' : 'key';
    const suggestions = suggestKeys(segments, this.ctx.knownKeys).map((k) => JSON.stringify(formatKeyPath(k)));
    let hint: string;
    if (suggestions.length > 0) {
      const last = suggestions.pop();
      hint = `did you mean ${suggestions.length > 0 ? `${suggestions.join(', ')} or ${last}` : last}?`;
    } else {
      const parent = segments.slice(0, -1);
      const allowed = this.ctx.knownKeys.filter((k) => k.length === segments.length && parent.every((s, i) => k[i] === s));
      const scope = parent.length === 0 ? 'at the top level' : `in [${formatKeyPath(parent)}]`;
      hint = `allowed ${scope}: ${allowed.map((k) => k[k.length - 1]).join(', ')}`;
    }
    this.add(path, `unknown ${kind} "${path}"; ${hint}`, this.where(path, 'key'), plainValue(value));
  }

  private addMissingKey(segments: readonly string[]): void {
    const path = formatKeyPath(segments);
    const table = formatKeyPath(segments.slice(0, -1));
    // Point at the table that should hold the key, or at the start of the file if it has none.
    const tableAt = this.position(this.ctx.locations.value(table));
    let message = `missing required key "${path}"`;
    if (table !== '') message += tableAt ? ` in the [${table}] table` : `; add it under a [${table}] table`;
    const at = this.ctx.flags.get(path) ?? tableAt ?? this.position({ line: 1, column: 1 });
    this.add(path, message, at ?? this.ctx.file, undefined);
  }

  private where(path: string, kind: 'key' | 'value'): string {
    const flag = this.ctx.flags.get(path);
    if (flag !== undefined) return flag;
    return this.position(this.ctx.locations[kind](path)) ?? this.position({ line: 1, column: 1 }) ?? this.ctx.file;
  }

  private position(pos: Position | undefined): string | undefined {
    return pos && `${this.ctx.file}:${pos.line}:${pos.column}`;
  }

  private add(path: string, message: string, location: string, value: unknown): void {
    if (this.seen.has(path)) return;
    this.seen.add(path);
    const pos = /:(\d+):(\d+)$/.exec(location);
    const order: Problem['order'] = pos && !this.ctx.flags.has(path) ? [0, Number(pos[1]), Number(pos[2])] : [1, this.problems.length, 0];
    const issue: ValidationIssue = value === undefined ? { path, message, location } : { path, message, location, value };
    this.problems.push({ issue, order });
  }

  /** All problems, sorted by where they are, as one error; undefined when there are none. */
  error(): ConfigInvalidError | undefined {
    if (this.problems.length === 0) return undefined;
    const sorted = [...this.problems].sort((a, b) => a.order[0] - b.order[0] || a.order[1] - b.order[1] || a.order[2] - b.order[2]);
    return configError(this.ctx.file, sorted.map((p) => p.issue));
  }
}

/** One line per problem: `location: message`. */
export function formatIssue(issue: ValidationIssue): string {
  return issue.location === undefined ? issue.message : `${issue.location}: ${issue.message}`;
}

/** A single problem is its own message; several get a summary line then one indented line each. */
export function configError(file: string, issues: readonly ValidationIssue[], cause?: unknown): ConfigInvalidError {
  const lines = issues.map(formatIssue);
  const message = lines.length === 1 ? (lines[0] ?? '') : [`invalid ${file} (${lines.length} problems):`, ...lines.map((l) => `  ${l}`)].join('\n');
  return new ConfigInvalidError(message, issues, cause);
}
