/** "Did you mean …?" for unknown keys: finds known keys a typo away from what was written. */

/**
 * Optimal string alignment distance: Levenshtein plus swapping two neighbours, because
 * `memroy` for `memory` is one slip of the fingers, not two.
 */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        row.push(j);
        continue;
      }
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      const prev = rows[i - 1] ?? [];
      let d = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, (rows[i - 2]?.[j - 2] ?? 0) + 1);
      row.push(d);
    }
    rows.push(row);
  }
  return rows[a.length]?.[b.length] ?? 0;
}

/** Case, `-` and `_` differences are not typos worth counting (`cloud-hypervisor` vs `cloud_hypervisor`). */
function normalize(name: string): string {
  return name.toLowerCase().replace(/[-_]/g, '');
}

function isClose(typed: string, known: string): boolean {
  const a = normalize(typed);
  const b = normalize(known);
  if (a === b) return true;
  // A prefix such as `mem` or `memory_mib` is a clearer hint than any distance.
  if (Math.min(a.length, b.length) >= 3 && (a.startsWith(b) || b.startsWith(a))) return true;
  return editDistance(a, b) <= (Math.max(a.length, b.length) >= 6 ? 2 : 1);
}

/**
 * Names other tools use for our keys (normalised, see `normalize`): `cmd` is Docker's and OCI's
 * word for `command`, `image` is what `--image` sets. No edit distance would find these.
 */
const aliases: Readonly<Record<string, string>> = {
  cmd: 'command',
  args: 'command',
  workingdir: 'workdir',
  cwd: 'workdir',
  environment: 'env',
  uid: 'user',
  terminal: 'tty',
  image: 'ref',
};

/**
 * Known keys (dotted paths) that `unknown` may have meant: first its close siblings in the same
 * table, else keys with the same name in another table (`[hardware] provider` → `hypervisor.provider`);
 * a known alias (`cmd` → `command`) counts as the same name.
 * `known` lists every known path as segments; at most three suggestions, all equally close.
 */
export function suggestKeys(unknown: readonly string[], known: readonly (readonly string[])[]): string[][] {
  const parent = unknown.slice(0, -1);
  const name = unknown[unknown.length - 1] ?? '';
  const sameParent = (k: readonly string[]): boolean =>
    k.length === unknown.length && parent.every((segment, i) => k[i] === segment);
  const lastOf = (k: readonly string[]): string => k[k.length - 1] ?? '';
  const distance = (k: readonly string[]): number => editDistance(normalize(name), normalize(lastOf(k)));
  const close = known.filter((k) => sameParent(k) && isClose(name, lastOf(k)));
  // Only the closest: `kernel_arg` means `kernel_args`, even though `kernel` is a prefix of it.
  const best = Math.min(...close.map(distance));
  const siblings = close.filter((k) => distance(k) === best);
  if (siblings.length > 0) return siblings.slice(0, 3).map((k) => [...k]);
  const alias = Object.hasOwn(aliases, normalize(name)) ? aliases[normalize(name)] : undefined;
  const named = (k: readonly string[]): boolean => normalize(lastOf(k)) === normalize(name) || lastOf(k) === alias;
  const aliased = known.filter((k) => sameParent(k) && lastOf(k) === alias);
  const pick = aliased.length > 0 ? aliased : known.filter((k) => !sameParent(k) && named(k));
  return pick.slice(0, 3).map((k) => [...k]);
}
