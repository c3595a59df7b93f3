/**
 * The OpenAPI document against the server it describes: every route the HTTP API registers (with
 * every optional part on: images, tokens, metrics, exec/attach sockets) is in the document and the
 * scope table, and nothing else is; and a third-party validator accepts the document.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import SwaggerParser from '@apidevtools/swagger-parser';
import type { OpenAPIV3 } from 'openapi-types';
import type { VmService } from '../core/vm-service.js';
import { HypercoreMetrics } from '../metrics/hypercore-metrics.js';
import { httpRouteScopes } from './auth/scopes.js';
import { buildHttpApi } from './http-server.js';
import type { ImageOperations } from './image-operations.js';
import { ALWAYS_SET, ANSWER_FORMS, answerFormName, documentedRoutes, openApiDocument, openApiPath } from './openapi.js';
import type { VmOperations } from './operations.js';
import type { ShimOperations } from './shim-operations.js';
import type { TokenOperations } from './token-operations.js';
import { registerProcessSockets } from './websocket-process.js';

/** The routes a fully equipped server registers, as `METHOD template`. */
async function serverRoutes(): Promise<string[]> {
  const stub = {} as never;
  const routes: string[] = [];
  const metrics = new HypercoreMetrics({ vms: () => [], providers: ['qemu'] });
  const app = buildHttpApi(stub as VmOperations, stub as ImageOperations, { tokens: stub as TokenOperations, metrics, shim: stub as ShimOperations, onRoute: (route) => routes.push(route) });
  await registerProcessSockets(app, stub as VmService);
  await app.ready();
  await app.close();
  return [...new Set(routes)].sort();
}

test('the document describes exactly the routes the server has, and the scope table names the same ones', async () => {
  const served = await serverRoutes();
  const documented = [...documentedRoutes()].sort();
  assert.ok(served.length >= 30, `found ${served.length} routes`);
  assert.deepEqual(
    served.filter((r) => !documented.includes(r)),
    [],
    'served but not documented',
  );
  assert.deepEqual(
    documented.filter((r) => !served.includes(r)),
    [],
    'documented but not served',
  );
  assert.deepEqual(Object.keys(httpRouteScopes).sort(), documented, 'the scope table and the document name other routes');
  const doc = openApiDocument() as unknown as OpenAPIV3.Document;
  const inDocument = Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item ?? {}).map((m) => `${m.toUpperCase()} ${path}`)).sort();
  assert.deepEqual(inDocument, documented.map((r) => `${r.split(' ')[0]} ${openApiPath(r.split(' ')[1]!)}`).sort());
});

test('swagger-parser validates the document (schema and $refs)', async () => {
  const doc = structuredClone(openApiDocument()) as unknown as OpenAPIV3.Document;
  await SwaggerParser.validate(doc);
  const operationIds = Object.values(doc.paths).flatMap((item) => Object.values(item ?? {}).map((op) => (op as OpenAPIV3.OperationObject).operationId));
  assert.equal(new Set(operationIds).size, operationIds.length, 'operationIds are unique');
});

test('request bodies and query parameters come from the proto messages, without the fields the path carries', () => {
  const doc = openApiDocument() as unknown as OpenAPIV3.Document;
  const stop = doc.paths['/v1/vms/{id}/stop']?.post?.requestBody as OpenAPIV3.RequestBodyObject;
  const stopSchema = stop.content['application/json']?.schema as OpenAPIV3.SchemaObject;
  assert.deepEqual(Object.keys(stopSchema.properties ?? {}), ['timeoutSeconds', 'force']);
  const deleteImage = doc.paths['/v1/images/{reference}']?.delete?.parameters as OpenAPIV3.ParameterObject[];
  assert.deepEqual(deleteImage.map((p) => `${p.in}:${p.name}`), ['path:reference', 'query:force']);
  const error = doc.components?.schemas?.['Error'] as OpenAPIV3.SchemaObject;
  const code = ((error.properties?.['error'] as OpenAPIV3.SchemaObject).properties?.['code'] as OpenAPIV3.SchemaObject).enum;
  assert.ok(code?.includes('HC_VM_NOT_FOUND') && code.includes('HC_PERMISSION_DENIED'));
});

test('the fields marked always set are required in answers only: no request body or parameter carries their messages', () => {
  const doc = openApiDocument() as unknown as OpenAPIV3.Document;
  const schemas = doc.components?.schemas ?? {};
  const refsIn = (value: unknown, out: Set<string>): Set<string> => {
    if (Array.isArray(value)) for (const v of value) refsIn(v, out);
    else if (value && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) {
        if (k === '$ref' && typeof v === 'string') out.add(v.split('/').pop()!);
        else refsIn(v, out);
      }
    }
    return out;
  };
  const sent = new Set<string>();
  const pending = [...refsIn(Object.values(doc.paths).flatMap((item) => Object.values(item ?? {}).map((op) => [(op as OpenAPIV3.OperationObject).requestBody, (op as OpenAPIV3.OperationObject).parameters])), new Set())];
  for (let name = pending.pop(); name !== undefined; name = pending.pop()) {
    if (sent.has(name)) continue;
    sent.add(name);
    pending.push(...refsIn(schemas[name], new Set()));
  }
  assert.ok(sent.has('VmSpec'), 'a create sends a VmSpec');
  assert.deepEqual(Object.keys(ALWAYS_SET).filter((name) => sent.has(name)), []);
  for (const [name, fields] of Object.entries(ALWAYS_SET)) assert.deepEqual((schemas[name] as OpenAPIV3.SchemaObject).required, [...fields], name);
  assert.equal((schemas['VmSpec'] as OpenAPIV3.SchemaObject).required, undefined);
  // A message both sent and answered: answers refer to its answer form, which requires what they always carry.
  for (const [name, fields] of Object.entries(ANSWER_FORMS)) {
    assert.ok(!sent.has(answerFormName(name)), `no request carries ${answerFormName(name)}`);
    assert.deepEqual((schemas[answerFormName(name)] as OpenAPIV3.SchemaObject).required, [...fields]);
  }
  assert.deepEqual((schemas['Vm'] as OpenAPIV3.SchemaObject).properties?.['spec'], { $ref: '#/components/schemas/VmSpecAnswer' });
});
