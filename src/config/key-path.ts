/** Dotted key paths (`hardware.cores`, `workload.env[1]`) shared by the locator, the validator and the error messages. */

const bareKey = /^[A-Za-z0-9_-]+$/;

/** One step of a key path: a table key, or an array index. */
export type KeySegment = string | number;

/**
 * Joins key segments the way TOML would write them: bare keys as-is, anything else quoted,
 * so that a quoted key containing a dot (`"a.b"`) never collides with the path `a.b`.
 * Array indices (numbers) are written `[i]`, as in `workload.env[1]`.
 */
export function formatKeyPath(segments: readonly PropertyKey[]): string {
  let out = '';
  for (const s of segments) {
    if (typeof s === 'number') {
      out += `[${s}]`;
      continue;
    }
    const key = typeof s === 'string' && bareKey.test(s) ? s : JSON.stringify(String(s));
    out += out === '' ? key : `.${key}`;
  }
  return out;
}

/** A parsed TOML table, after `toml-values` normalisation (null prototype, so any key is data). */
export type TomlTree = { [key: string]: unknown };

/** True for tables (TOML tables and inline tables), false for arrays, dates and scalars. */
export function isTable(value: unknown): value is TomlTree {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === null || proto === Object.prototype;
}

/** The value at `segments` under `tree` (numbers index arrays), or undefined when any step is missing. */
export function getAt(tree: unknown, segments: readonly PropertyKey[]): unknown {
  let node: unknown = tree;
  for (const segment of segments) {
    if (typeof segment === 'number') {
      if (!Array.isArray(node) || !Number.isInteger(segment) || segment < 0 || segment >= node.length) return undefined;
      node = node[segment] as unknown;
    } else {
      if (!isTable(node) || typeof segment !== 'string' || !Object.hasOwn(node, segment)) return undefined;
      node = node[segment];
    }
  }
  return node;
}
