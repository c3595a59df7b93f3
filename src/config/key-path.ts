/** Dotted key paths (`hardware.cores`) shared by the locator, the validator and the error messages. */

const bareKey = /^[A-Za-z0-9_-]+$/;

/**
 * Joins key segments the way TOML would write them: bare keys as-is, anything else quoted,
 * so that a quoted key containing a dot (`"a.b"`) never collides with the path `a.b`.
 */
export function formatKeyPath(segments: readonly PropertyKey[]): string {
  return segments.map((s) => (typeof s === 'string' && bareKey.test(s) ? s : JSON.stringify(String(s)))).join('.');
}

/** A parsed TOML table, after `toml-values` normalisation (null prototype, so any key is data). */
export type TomlTree = { [key: string]: unknown };

/** True for tables (TOML tables and inline tables), false for arrays, dates and scalars. */
export function isTable(value: unknown): value is TomlTree {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === null || proto === Object.prototype;
}

/** The value at `segments` under `tree`, or undefined when any step is missing or not a table. */
export function getAt(tree: unknown, segments: readonly PropertyKey[]): unknown {
  let node: unknown = tree;
  for (const segment of segments) {
    if (!isTable(node) || typeof segment !== 'string' || !Object.hasOwn(node, segment)) return undefined;
    node = node[segment];
  }
  return node;
}
