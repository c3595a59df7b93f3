/** The hac.toml format as JSON Schema, for editors (e.g. Taplo / Even Better TOML) and for key suggestions. */
import * as z from 'zod';
import { hacSchema } from './schema.js';

type JsonObject = { [key: string]: unknown };

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A JSON Schema (draft 2020-12) of hac.toml, with descriptions and defaults. It describes the
 * file format, not one host: `hardware.cores` has no upper bound here because that depends on the host.
 */
export function hacJsonSchema(): object {
  // io: 'input' so keys with defaults are optional, as they are for someone writing the file.
  return z.toJSONSchema(hacSchema(), { target: 'draft-2020-12', io: 'input' });
}

let known: readonly (readonly string[])[] | undefined;

/** Every table and key the format knows, as path segments (`['hardware', 'cores']`), in schema order. */
export function knownKeyPaths(): readonly (readonly string[])[] {
  if (known) return known;
  const out: string[][] = [];
  const walk = (schema: unknown, prefix: string[]): void => {
    if (!isObject(schema) || !isObject(schema.properties)) return;
    for (const [key, child] of Object.entries(schema.properties)) {
      out.push([...prefix, key]);
      walk(child, [...prefix, key]);
    }
  };
  walk(hacJsonSchema(), []);
  known = out;
  return known;
}
