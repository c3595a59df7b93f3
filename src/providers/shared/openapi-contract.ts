/**
 * A VMM's published API contract (an OpenAPI document: Swagger 2.0 for Firecracker, OpenAPI 3.0
 * for Cloud Hypervisor), turned into a checker of requests: does the method and path exist, are the
 * path parameters present, does the JSON body match the operation's schema. Test VMMs use it to
 * hold every call the providers make to the official document, so a misspelt field or a wrong type
 * fails a test instead of a user's VM on a real host.
 *
 * Objects are closed: a property the schema does not declare is an error, as it is for both VMMs,
 * whose servers reject unknown fields.
 */
import { readFile } from 'node:fs/promises';
import { Ajv, type ValidateFunction } from 'ajv';
import { parse as parseYaml } from 'yaml';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/** The operation a request maps to. */
export interface ContractOperation {
  method: string;
  /** The path template as the document writes it, without the base path (e.g. `/drives/{drive_id}`). */
  template: string;
  pathParams: Record<string, string>;
}

export type ContractCheck = { ok: true; operation: ContractOperation } | { ok: false; status: 400 | 404 | 405; problem: string };

interface OperationEntry {
  template: string;
  pattern: RegExp;
  paramNames: string[];
  methods: Map<string, { body?: ValidateFunction; bodyRequired: boolean }>;
}

const DOC_ID = 'api-document';
const METHODS = ['get', 'put', 'post', 'patch', 'delete'];

/** Integer formats both documents use, with the range their VMMs enforce. */
const INTEGER_FORMATS: Record<string, [number, number]> = {
  int8: [-128, 127],
  int16: [-32768, 32767],
  int32: [-2147483648, 2147483647],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  uint8: [0, 255],
  uint16: [0, 65535],
  uint32: [0, 4294967295],
  uint64: [0, Number.MAX_SAFE_INTEGER],
};

function isObject(value: Json | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Rewrites a document for the validator: local `$ref`s point into the registered document, and
 * object schemas with declared properties become closed.
 */
function prepare(node: Json, inSchema: boolean): Json {
  if (Array.isArray(node)) return node.map((n) => prepare(n, inSchema));
  if (!isObject(node)) return node;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === '$ref' && typeof value === 'string' && value.startsWith('#/')) out[key] = `${DOC_ID}${value}`;
    // `properties` maps names to schemas; its own keys are never keywords.
    else out[key] = prepare(value, inSchema || key === 'schema' || key === 'definitions' || key === 'schemas' || key === 'properties' || key === 'items');
  }
  if (inSchema && isObject(out['properties']) && out['additionalProperties'] === undefined && out['allOf'] === undefined) out['additionalProperties'] = false;
  return out;
}

function templatePattern(basePath: string, template: string): { pattern: RegExp; paramNames: string[] } {
  const paramNames: string[] = [];
  const escaped = `${basePath}${template}`
    .split(/(\{[^}]+\})/)
    .map((part) => {
      const param = /^\{([^}]+)\}$/.exec(part);
      if (param) {
        paramNames.push(param[1]!);
        return '([^/]+)';
      }
      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('');
  return { pattern: new RegExp(`^${escaped}$`), paramNames };
}

export class OpenApiContract {
  private constructor(
    private readonly entries: OperationEntry[],
    readonly title: string,
    readonly version: string,
  ) {}

  /** Loads a Swagger 2.0 or OpenAPI 3.x document (YAML or JSON). */
  static async load(file: string): Promise<OpenApiContract> {
    return OpenApiContract.fromDocument(parseYaml(await readFile(file, 'utf8')) as Json, file);
  }

  static fromDocument(raw: Json, source = 'the document'): OpenApiContract {
    if (!isObject(raw) || !isObject(raw['paths'])) throw new Error(`${source} is not an OpenAPI document (no paths)`);
    const swagger = raw['swagger'] === '2.0';
    const doc = prepare(raw, false) as JsonObject;
    const ajv = new Ajv({ strict: false, validateSchema: false, allErrors: true, logger: false });
    for (const [name, [min, max]] of Object.entries(INTEGER_FORMATS)) {
      ajv.addFormat(name, { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= min && n <= max });
    }
    ajv.addSchema(doc as object, DOC_ID);
    const basePath = swagger ? String(raw['basePath'] ?? '/').replace(/\/$/, '') : serverPath(raw);
    const entries: OperationEntry[] = [];
    for (const [template, item] of Object.entries(doc['paths'] as JsonObject)) {
      if (!isObject(item)) continue;
      const { pattern, paramNames } = templatePattern(basePath, template);
      const methods = new Map<string, { body?: ValidateFunction; bodyRequired: boolean }>();
      for (const method of METHODS) {
        const op = item[method];
        if (!isObject(op)) continue;
        const body = swagger ? swaggerBody(op) : openApi3Body(op);
        methods.set(method.toUpperCase(), body ? { body: ajv.compile(body.schema as object), bodyRequired: body.required } : { bodyRequired: false });
      }
      entries.push({ template, pattern, paramNames, methods });
    }
    const info = isObject(raw['info']) ? raw['info'] : {};
    return new OpenApiContract(entries, String(info['title'] ?? 'API'), String(info['version'] ?? ''));
  }

  /** Checks one request; `body` undefined means the request had none. */
  check(method: string, path: string, body: unknown): ContractCheck {
    const bare = path.split('?')[0]!;
    for (const entry of this.entries) {
      const match = entry.pattern.exec(bare);
      if (!match) continue;
      const op = entry.methods.get(method.toUpperCase());
      if (!op) return { ok: false, status: 405, problem: `${method} is not an operation of ${entry.template} (it has ${[...entry.methods.keys()].join(', ')})` };
      const pathParams: Record<string, string> = {};
      entry.paramNames.forEach((name, i) => (pathParams[name] = decodeURIComponent(match[i + 1]!)));
      if (op.body) {
        if (body === undefined) {
          if (op.bodyRequired) return { ok: false, status: 400, problem: `${method} ${entry.template} needs a JSON body` };
        } else if (!op.body(body)) {
          const problems = (op.body.errors ?? []).map((e) => `${e.instancePath || '(body)'} ${e.message ?? 'is invalid'}${e.params && 'additionalProperty' in e.params ? ` (${String(e.params['additionalProperty'])})` : ''}`);
          return { ok: false, status: 400, problem: `${method} ${entry.template}: the body does not match the schema: ${problems.join('; ')}` };
        }
      } else if (body !== undefined) {
        return { ok: false, status: 400, problem: `${method} ${entry.template} takes no body` };
      }
      return { ok: true, operation: { method: method.toUpperCase(), template: entry.template, pathParams } };
    }
    return { ok: false, status: 404, problem: `${path} is not a path of the ${this.title} API` };
  }
}

function swaggerBody(op: JsonObject): { schema: Json; required: boolean } | undefined {
  const params = Array.isArray(op['parameters']) ? op['parameters'] : [];
  const body = params.find((p) => isObject(p) && p['in'] === 'body');
  return isObject(body) && body['schema'] !== undefined ? { schema: body['schema'], required: body['required'] === true } : undefined;
}

function openApi3Body(op: JsonObject): { schema: Json; required: boolean } | undefined {
  const rb = op['requestBody'];
  if (!isObject(rb) || !isObject(rb['content'])) return undefined;
  const json = rb['content']['application/json'];
  return isObject(json) && json['schema'] !== undefined ? { schema: json['schema'], required: rb['required'] === true } : undefined;
}

/** The path part of an OpenAPI 3 document's first server URL (e.g. `/api/v1`). */
function serverPath(doc: JsonObject): string {
  const servers = Array.isArray(doc['servers']) ? doc['servers'] : [];
  const first = servers[0];
  const url = isObject(first) && typeof first['url'] === 'string' ? first['url'] : '/';
  try {
    return new URL(url, 'http://localhost').pathname.replace(/\/$/, '');
  } catch {
    return '';
  }
}
