/**
 * Checks a real answer of the daemon against the document's required fields (the fields the
 * daemon says it always sets, which the SDK's types then require), through every nested message.
 */
import assert from 'node:assert/strict';
import { openApiDocument } from '../../src/api/openapi.js';

interface Schema {
  $ref?: string;
  allOf?: Schema[];
  items?: Schema;
  additionalProperties?: Schema | boolean;
  required?: string[];
  properties?: Record<string, Schema>;
}

const schemas = (openApiDocument() as { components: { schemas: Record<string, Schema> } }).components.schemas;

/** The message a schema stands for, through allOf (a described $ref). */
function messageOf(schema: Schema | undefined): string | undefined {
  return schema?.$ref?.split('/').pop() ?? schema?.allOf?.[0]?.$ref?.split('/').pop();
}

function check(schema: Schema, value: unknown, path: string): void {
  const message = messageOf(schema);
  if (message) return assertAlwaysSet(message, value, path);
  if (Array.isArray(value) && schema.items) value.forEach((v, i) => check(schema.items!, v, `${path}[${i}]`));
  else if (value && typeof value === 'object' && typeof schema.additionalProperties === 'object') {
    for (const [k, v] of Object.entries(value)) check(schema.additionalProperties, v, `${path}.${k}`);
  }
}

/** Asserts that `value`, an answer carrying message `name`, has every field the document requires, at every depth. */
export function assertAlwaysSet(name: string, value: unknown, path = name): void {
  const schema = schemas[name];
  assert.ok(schema, `the document has no schema ${name}`);
  assert.ok(value && typeof value === 'object' && !Array.isArray(value), `${path}: not an object`);
  const object = value as Record<string, unknown>;
  for (const field of schema.required ?? []) assert.notEqual(object[field], undefined, `${path}.${field} is missing from a real answer, but the document says it is always set: ${JSON.stringify(value).slice(0, 500)}`);
  for (const [field, v] of Object.entries(object)) {
    const property = schema.properties?.[field];
    if (property && v !== undefined) check(property, v, `${path}.${field}`);
  }
}
