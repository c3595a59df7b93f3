/**
 * Turns validation findings into `ValidationIssue`s that say where (`file:line:column` or the
 * CLI flag), which key, which value and what is allowed, and gathers them into one error so a
 * user fixes every problem in one pass instead of one per run.
 */
import type * as z from 'zod';
import { ConfigInvalidError, type ValidationIssue } from '../core/errors.js';
import { SECRET_SHOWN_AS } from '../core/metadata.js';
import { formatKeyPath, getAt, isTable, type KeySegment, type TomlTree } from './key-path.js';
import type { KeyLocations, Position } from './locator.js';
import { mayHoldSecrets } from './secret-paths.js';
import { suggestKeys } from './suggest.js';
import { formatTomlValue, plainValue } from './toml-values.js';

/** `params` key that marks a zod custom issue as a rule about a whole table (its path is the table's). */
export const tableIssueParam = 'hacTable';

/** What the collector needs to describe a problem. */
export interface IssueContext {
  /** The file name as the user gave it; locations are `file:line:column`. */
  file: string;
  /** The parsed file with overrides applied: where reported values come from. */
  tree: TomlTree;
  /** Where keys are written; absent when there is no file text (then `file` is the location). */
  locations?: KeyLocations;
  /** Paths set by CLI flags, and the flag that set each (a flag also covers the items of its array). */
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

  /**
   * Adds zod's findings; only the first problem of each key is kept, they all say the same.
   * A custom issue with `params: tableIssue` is about a table as a whole (see `addTableProblem`).
   */
  addZodIssues(issues: readonly z.core.$ZodIssue[]): void {
    for (const issue of issues) {
      const segments = issue.path.map((s): KeySegment => (typeof s === 'number' ? s : String(s)));
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys) this.addUnknownKey([...segments, key]);
      } else if (issue.code === 'custom' && issue.params?.[tableIssueParam] === true) {
        this.addTableProblem(segments, issue.message);
      } else if (getAt(this.ctx.tree, segments) === undefined) {
        this.addMissingKey(segments);
      } else {
        this.addBadValue(segments, issue.message);
      }
    }
  }

  /** `key = value: <allowed>`, located at the value (or the flag that set it); a secret's value is not shown. */
  addBadValue(segments: readonly KeySegment[], allowed: string): void {
    const path = formatKeyPath(segments);
    const value = getAt(this.ctx.tree, segments);
    if (mayHoldSecrets(segments, value)) return this.add(path, `${path} = ${SECRET_SHOWN_AS}: ${allowed}`, this.where(segments, 'value'), undefined);
    this.add(path, `${path} = ${formatTomlValue(value)}: ${allowed}`, this.where(segments, 'value'), plainValue(value));
  }

  /**
   * A rule about a table as a whole (e.g. which keys it needs together), located at its header,
   * else at the first flag that set a key in it, else at the start of the file.
   */
  addTableProblem(segments: readonly KeySegment[], message: string): void {
    const path = formatKeyPath(segments);
    const flag = [...this.ctx.flags].find(([key]) => key === path || key.startsWith(`${path}.`))?.[1];
    this.add(path, message, this.position(this.ctx.locations?.value(path)) ?? flag ?? this.start(), undefined);
  }

  private addUnknownKey(segments: readonly KeySegment[]): void {
    const path = formatKeyPath(segments);
    const value = getAt(this.ctx.tree, segments);
    const kind = isTable(value) ? 'table' : 'key';
    const names = segments.map(String);
    const suggestions = suggestKeys(names, this.ctx.knownKeys).map((k) => JSON.stringify(formatKeyPath(k)));
    let hint: string;
    if (suggestions.length > 0) {
      const last = suggestions.pop();
      hint = `did you mean ${suggestions.length > 0 ? `${suggestions.join(', ')} or ${last}` : last}?`;
    } else {
      const parent = names.slice(0, -1);
      const allowed = this.ctx.knownKeys.filter((k) => k.length === names.length && parent.every((s, i) => k[i] === s));
      const scope = parent.length === 0 ? 'at the top level' : `in [${formatKeyPath(parent)}]`;
      hint = `allowed ${scope}: ${allowed.map((k) => k[k.length - 1]).join(', ')}`;
    }
    this.add(path, `unknown ${kind} "${path}"; ${hint}`, this.where(segments, 'key'), plainValue(value));
  }

  private addMissingKey(segments: readonly KeySegment[]): void {
    const path = formatKeyPath(segments);
    const table = formatKeyPath(segments.slice(0, -1));
    // Point at the table that should hold the key, or at the start of the file if it has none.
    const tableAt = this.position(this.ctx.locations?.value(table));
    let message = `missing required key "${path}"`;
    if (table !== '' && this.ctx.locations) message += tableAt ? ` in the [${table}] table` : `; add it under a [${table}] table`;
    this.add(path, message, this.flagOf(segments) ?? tableAt ?? this.start(), undefined);
  }

  private where(segments: readonly KeySegment[], kind: 'key' | 'value'): string {
    return this.flagOf(segments) ?? this.position(this.ctx.locations?.[kind](formatKeyPath(segments))) ?? this.start();
  }

  /** The flag that set this path or an array it is an item of. */
  private flagOf(segments: readonly KeySegment[]): string | undefined {
    for (let end = segments.length; end > 0; end--) {
      const flag = this.ctx.flags.get(formatKeyPath(segments.slice(0, end)));
      if (flag !== undefined) return flag;
      if (typeof segments[end - 1] !== 'number') break;
    }
    return undefined;
  }

  /** Where a problem with no better place is reported: the start of the file, or just its name. */
  private start(): string {
    return this.position(this.ctx.locations && { line: 1, column: 1 }) ?? this.ctx.file;
  }

  private position(pos: Position | undefined): string | undefined {
    return pos && `${this.ctx.file}:${pos.line}:${pos.column}`;
  }

  private add(path: string, message: string, location: string, value: unknown): void {
    if (this.seen.has(path)) return;
    this.seen.add(path);
    const pos = location.startsWith(`${this.ctx.file}:`) ? /:(\d+):(\d+)$/.exec(location) : null;
    const order: Problem['order'] = pos ? [0, Number(pos[1]), Number(pos[2])] : [1, this.problems.length, 0];
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
