/**
 * The OpenAPI 3 document served at GET /openapi.json. Component schemas are generated from the same
 * vm.proto the gRPC server serves (proto3 JSON names), so the two transports are documented from one source.
 */
import protobuf from 'protobufjs';
import { join } from 'node:path';
import { PROTO_DIR, PROTO_FILES } from './proto.js';

type JsonSchema = Record<string, unknown>;

const scalarSchemas: Record<string, JsonSchema> = {
  string: { type: 'string' },
  bool: { type: 'boolean' },
  uint32: { type: 'integer', minimum: 0 },
  int32: { type: 'integer' },
  uint64: { type: 'integer', minimum: 0 },
  int64: { type: 'integer' },
  double: { type: 'number' },
  float: { type: 'number' },
  bytes: { type: 'string', format: 'byte' },
};

function messageSchema(type: protobuf.Type): JsonSchema {
  const properties: Record<string, JsonSchema> = {};
  for (const field of type.fieldsArray) {
    field.resolve();
    let schema: JsonSchema = field.resolvedType ? { $ref: `#/components/schemas/${field.resolvedType.name}` } : { ...(scalarSchemas[field.type] ?? {}) };
    if (field.repeated) schema = { type: 'array', items: schema };
    if (field.map) schema = { type: 'object', additionalProperties: schema };
    if (field.comment) schema = { ...schema, description: field.comment };
    properties[protobuf.util.camelCase(field.name)] = schema;
  }
  return { type: 'object', properties, additionalProperties: false, ...(type.comment ? { description: type.comment } : {}) };
}

const errorSchema: JsonSchema = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: {
        code: { type: 'string', description: 'stable error code, e.g. HC_VM_NOT_FOUND' },
        message: { type: 'string' },
        details: { type: 'array', items: { type: 'object', properties: { path: { type: 'string' }, message: { type: 'string' }, location: { type: 'string' }, value: {} } } },
      },
    },
  },
};

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (name: string, description = 'OK') => ({ description, content: { 'application/json': { schema: ref(name) } } });
const errors = {
  '400': { description: 'invalid input', content: { 'application/json': { schema: ref('Error') } } },
  '404': { description: 'no such VM', content: { 'application/json': { schema: ref('Error') } } },
  '409': { description: 'conflicting state or name', content: { 'application/json': { schema: ref('Error') } } },
  '500': { description: 'hypervisor or internal failure', content: { 'application/json': { schema: ref('Error') } } },
};
const idParam = { name: 'id', in: 'path', required: true, description: 'VM id, unique id prefix, or name', schema: { type: 'string' } };
const snapshotParam = { ...idParam, description: 'snapshot id, unique id prefix, or name' };

let cached: JsonSchema | undefined;

export function openApiDocument(): JsonSchema {
  if (cached) return cached;
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => join(PROTO_DIR, target);
  root.loadSync(PROTO_FILES, { alternateCommentMode: true }).resolveAll();
  const pkg = root.lookup('hypercore.v1') as protobuf.Namespace;
  const schemas: Record<string, JsonSchema> = { Error: errorSchema };
  for (const nested of pkg.nestedArray) if (nested instanceof protobuf.Type) schemas[nested.name] = messageSchema(nested);
  cached = {
    openapi: '3.0.3',
    info: { title: 'Hypercore VM API', version: '1.0.0', description: 'HTTP/JSON form of hypercore.v1.VmService (same names and fields as the gRPC service).' },
    paths: {
      '/v1/vms': {
        get: { operationId: 'ListVms', responses: { '200': json('ListVmsResponse') } },
        post: { operationId: 'CreateVm', requestBody: { required: true, content: { 'application/json': { schema: ref('CreateVmRequest') } } }, responses: { '201': json('Vm', 'created and running (with "start": false, created and not booted)'), ...errors } },
      },
      '/v1/vms/{id}': {
        get: { operationId: 'GetVm', parameters: [idParam], responses: { '200': json('Vm'), ...errors } },
        delete: { operationId: 'DeleteVm', parameters: [idParam, { name: 'force', in: 'query', schema: { type: 'boolean' } }], responses: { '200': json('DeleteVmResponse'), ...errors } },
      },
      '/v1/vms/{id}/start': { post: { operationId: 'StartVm', parameters: [idParam], responses: { '200': json('Vm'), ...errors } } },
      '/v1/vms/{id}/pause': { post: { operationId: 'PauseVm', parameters: [idParam], responses: { '200': json('Vm'), ...errors } } },
      '/v1/vms/{id}/resume': { post: { operationId: 'ResumeVm', parameters: [idParam], responses: { '200': json('Vm'), ...errors } } },
      '/v1/vms/{id}/stop': {
        post: { operationId: 'StopVm', parameters: [idParam], requestBody: { required: false, content: { 'application/json': { schema: { type: 'object', properties: { timeoutSeconds: { type: 'integer' }, force: { type: 'boolean' } } } } } }, responses: { '200': json('Vm'), ...errors } },
      },
      '/v1/vms/{id}/metadata': {
        get: { operationId: 'GetMetadata', parameters: [idParam], responses: { '200': json('VmMetadata'), ...errors } },
        post: {
          operationId: 'SetMetadata',
          parameters: [idParam],
          requestBody: { required: true, content: { 'application/json': { schema: { type: 'object', properties: { values: { type: 'object', additionalProperties: { type: 'string' } }, secret: { type: 'boolean' } }, required: ['values'] } } } },
          responses: { '200': json('VmMetadata'), ...errors },
        },
      },
      '/v1/vms/{id}/metadata/{key}': {
        get: { operationId: 'GetMetadataKey', parameters: [idParam, { name: 'key', in: 'path', required: true, schema: { type: 'string' } }], description: 'GetMetadata with key: that key only.', responses: { '200': json('VmMetadata'), ...errors } },
      },
      '/v1/vms/{id}/logs': {
        get: { operationId: 'StreamLogs', parameters: [idParam, { name: 'follow', in: 'query', schema: { type: 'boolean' } }], responses: { '200': { description: 'the serial console output (chunked while following)', content: { 'text/plain': { schema: { type: 'string' } } } }, ...errors } },
      },
      '/v1/vms/{id}/exec': {
        get: { operationId: 'Exec', parameters: [idParam], description: 'WebSocket (Upgrade): the Exec stream; text messages are ProcessInput / ProcessOutput in proto3 JSON (bytes base64); the first one is {"start":{...}}.', responses: { '101': { description: 'switching to WebSocket' }, ...errors } },
      },
      '/v1/vms/{id}/attach': {
        get: { operationId: 'Attach', parameters: [idParam, { name: 'fromStart', in: 'query', schema: { type: 'boolean' } }], description: 'WebSocket (Upgrade): the Attach stream, as Exec but for the workload main process.', responses: { '101': { description: 'switching to WebSocket' }, ...errors } },
      },
      '/v1/vms/{id}/snapshots': {
        post: { operationId: 'CreateSnapshot', parameters: [idParam], requestBody: { required: false, content: { 'application/json': { schema: { type: 'object', properties: { name: { type: 'string' }, leavePaused: { type: 'boolean' } } } } } }, responses: { '201': json('Snapshot', 'taken'), ...errors } },
      },
      '/v1/vms/{id}/clone': {
        post: { operationId: 'CloneVm', parameters: [idParam], requestBody: { required: false, content: { 'application/json': { schema: { type: 'object', properties: { count: { type: 'integer', minimum: 1, maximum: 32 } } } } } }, responses: { '201': json('CloneVmResponse', 'the clones, running'), ...errors } },
      },
      '/v1/snapshots': { get: { operationId: 'ListSnapshots', responses: { '200': json('ListSnapshotsResponse') } } },
      '/v1/snapshots/{id}': {
        get: { operationId: 'GetSnapshot', parameters: [snapshotParam], responses: { '200': json('Snapshot'), ...errors } },
        delete: { operationId: 'DeleteSnapshot', parameters: [snapshotParam], responses: { '200': json('DeleteSnapshotResponse'), ...errors } },
      },
      '/v1/snapshots/{id}/spawn': {
        post: { operationId: 'RestoreSnapshot', parameters: [snapshotParam], requestBody: { required: false, content: { 'application/json': { schema: { type: 'object', properties: { name: { type: 'string' } } } } } }, responses: { '201': json('Vm', 'resumed from the snapshot and running'), ...errors } },
      },
      '/v1/network/prune': { post: { operationId: 'PruneNetworks', responses: { '200': json('PruneNetworksResponse') } } },
      '/v1/doctor': { get: { operationId: 'Doctor', responses: { '200': json('DoctorResponse') } } },
      '/v1/events': {
        get: { operationId: 'WatchEvents', responses: { '200': { description: 'one VmEvent JSON object per line, as they happen', content: { 'application/x-ndjson': { schema: ref('VmEvent') } } } } },
      },
    },
    components: { schemas },
  };
  return cached;
}
