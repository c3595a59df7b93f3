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
import { documentedRoutes, openApiDocument, openApiPath } from './openapi.js';
import type { VmOperations } from './operations.js';
import type { TokenOperations } from './token-operations.js';
import { registerProcessSockets } from './websocket-process.js';

/** The routes a fully equipped server registers, as `METHOD template`. */
async function serverRoutes(): Promise<string[]> {
  const stub = {} as never;
  const routes: string[] = [];
  const metrics = new HypercoreMetrics({ vms: () => [], providers: ['qemu'] });
  const app = buildHttpApi(stub as VmOperations, stub as ImageOperations, { tokens: stub as TokenOperations, metrics, onRoute: (route) => routes.push(route) });
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
