/**
 * Parsing TOML into a tree the schema can judge, and writing values back TOML-style in messages.
 * TOML tells integers from floats but JavaScript numbers do not: `cores = 2.0` would pass as 2,
 * so floats with integral values are wrapped in `TomlFloat` and fail integer checks like any float.
 */
import { parse, TomlDate } from 'smol-toml';
import { isTable, type TomlTree } from './key-path.js';

/** A float written with an integral value (`2.0`); kept apart so it is not mistaken for an integer. */
export class TomlFloat {
  constructor(readonly value: number) {}
}

/** Parses TOML text (throws smol-toml's TomlError on syntax errors) into a normalised tree. */
export function parseTomlTree(text: string): TomlTree {
  const tree = normalize(parse(text, { integersAsBigInt: true }));
  return isTable(tree) ? tree : Object.create(null);
}

function normalize(value: unknown): unknown {
  if (typeof value === 'bigint') {
    // Integers too large for a number stay bigints: the schema rejects them and messages show them exactly.
    return Number.isSafeInteger(Number(value)) ? Number(value) : value;
  }
  if (typeof value === 'number') return Number.isInteger(value) ? new TomlFloat(value) : value;
  if (Array.isArray(value)) return value.map(normalize);
  if (isTable(value)) {
    const out: TomlTree = Object.create(null);
    for (const [k, v] of Object.entries(value)) out[k] = normalize(v);
    return out;
  }
  return value;
}

/** The value for `ValidationIssue.value`: as parsed, without our wrappers. */
export function plainValue(value: unknown): unknown {
  if (value instanceof TomlFloat) return value.value;
  if (Array.isArray(value)) return value.map(plainValue);
  if (isTable(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plainValue(v)]));
  return value;
}

const maxShown = 60;

/** Writes a value as it would appear in TOML (strings quoted, `2.0` for floats), shortened if long. */
export function formatTomlValue(value: unknown): string {
  const shown = format(value);
  return shown.length > maxShown ? `${shown.slice(0, maxShown - 1)}…` : shown;
}

function format(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value instanceof TomlFloat) return float(value.value);
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : float(value);
  if (typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  if (value instanceof TomlDate) return value.toISOString();
  if (Array.isArray(value)) return `[${value.map(format).join(', ')}]`;
  if (isTable(value)) {
    const entries = Object.entries(value).map(([k, v]) => `${k} = ${format(v)}`);
    return entries.length === 0 ? '{}' : `{ ${entries.join(', ')} }`;
  }
  return String(value);
}

function float(n: number): string {
  if (Number.isNaN(n)) return 'nan';
  if (!Number.isFinite(n)) return n > 0 ? 'inf' : '-inf';
  const s = String(n);
  return /^-?\d+$/.test(s) ? `${s}.0` : s;
}
