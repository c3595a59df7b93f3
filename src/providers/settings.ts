/**
 * Per-provider settings: each provider owns its `[hypervisor.<table>]` table in hac.toml (and the
 * matching `hypervisor.<specKey>` object of a VmSpec): it says which keys it takes, validates them
 * and reads them back typed. The core passes them through untouched.
 */
import type * as z from 'zod';
import type { ProviderName, VmSpec } from '../core/vm.js';

export interface ProviderSettings<T> {
  provider: ProviderName;
  /** The table under [hypervisor] in hac.toml, e.g. `cloud_hypervisor`. */
  table: string;
  /** The key under `hypervisor` in a VmSpec (proto3 JSON name of the table), e.g. `cloudHypervisor`. */
  specKey: string;
  /** One line for the JSON Schema and docs. */
  description: string;
  /** The table's keys as written in hac.toml, with their checks and defaults. */
  file: z.ZodObject;
  /**
   * The validated table as the spec stores it: camelCase keys, paths resolved by `resolveBinary`
   * (a program name stays a name; a path becomes absolute), unset keys left out.
   */
  toSpec(table: Record<string, unknown>, resolveBinary: (value: string | undefined) => string | undefined): Record<string, unknown>;
  /** The provider's typed view of a validated spec's settings (defaults filled in for old records; all defaults without a spec). */
  read(spec: VmSpec | undefined): T;
}

/** The provider's settings object in `spec`, or an empty one. */
export function settingsOf(spec: VmSpec | undefined, specKey: string): Record<string, unknown> {
  const value = spec?.hypervisor[specKey];
  return value && typeof value === 'object' ? value : {};
}
