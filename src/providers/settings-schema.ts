/** Pieces of settings schemas that every provider's table uses, so their errors read alike. */
import * as z from 'zod';
import type { ProviderName } from '../core/vm.js';
import { settingsOf, type ProviderSettings } from './settings.js';

export const tableError = { error: 'must be a table' };

export function oneOf(values: readonly string[]): string {
  return `must be one of ${values.map((v) => JSON.stringify(v)).join(', ')}`;
}

/** A program: a name looked up on PATH, or a path (relative to the hac.toml's folder if it contains a '/'). */
export function binarySetting(name: string) {
  const error = 'must be a non-empty string (a program name or path)';
  return z
    .string({ error })
    .min(1, { error })
    .optional()
    .describe(`the ${name} program: a name looked up on PATH, or a path (relative to the hac.toml's folder if it contains a '/')`);
}

/** For providers whose only setting is the program. */
export function binaryOnly(name: string) {
  return z.strictObject({ binary: binarySetting(name) }, tableError);
}

/** The settings of a provider whose only setting is its program. */
export interface BinarySettings {
  binary?: string;
}

/** Settings descriptor for such a provider. */
export function binaryOnlySettings(provider: ProviderName, table: string, specKey: string, name: string): ProviderSettings<BinarySettings> {
  return {
    provider,
    table,
    specKey,
    description: `${name} settings`,
    file: binaryOnly(name),
    toSpec: binaryToSpec,
    read: (spec) => {
      const s = settingsOf(spec, specKey);
      return typeof s['binary'] === 'string' ? { binary: s['binary'] } : {};
    },
  };
}

export function binaryToSpec(table: Record<string, unknown>, resolveBinary: (value: string | undefined) => string | undefined): Record<string, unknown> {
  const binary = resolveBinary(table['binary'] as string | undefined);
  return binary === undefined ? {} : { binary };
}
