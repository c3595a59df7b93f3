/** Finding a record by what a user types: its id, its name, or a unique prefix of its id. */
import { VmAmbiguousError } from './errors.js';

export interface RefLookups<T> {
  get(id: string): T | undefined;
  findByName(name: string): T | undefined;
  findByIdPrefix(prefix: string): T[];
}

/**
 * Exact id, exact name, then unique id prefix, in that order. Names made only of hex digits are
 * refused at create, so a name can never stand for another record's id prefix.
 */
export function findByRef<T extends { id: string }>(ref: string, lookups: RefLookups<T>, notFound: () => Error): T {
  const exact = lookups.get(ref) ?? lookups.findByName(ref);
  if (exact) return exact;
  const matches = ref.length > 0 ? lookups.findByIdPrefix(ref) : [];
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1) throw new VmAmbiguousError(ref, matches.map((m) => m.id));
  throw notFound();
}
