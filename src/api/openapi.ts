/**
 * The OpenAPI 3 document served at GET /openapi.json, describing every HTTP route and WebSocket
 * upgrade of the API. Component schemas, request bodies and query parameters are generated from
 * the same .proto files the gRPC server serves (proto3 JSON names), so the two transports are
 * documented from one source. The SDK's types are generated from this document.
 *
 * Routes are listed once each in `routeDocs`, keyed as fastify registers them (`GET /v1/vms/:id`),
 * so a unit test can compare them with the server's real routes both ways.
 */
import protobuf from 'protobufjs';
import { join } from 'node:path';
import { ErrorCodes } from '../core/errors.js';
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

/** `answer`: the field is in an answer-only message, so a message with an answer form refers to that form. */
function fieldSchema(field: protobuf.Field, answer = false): JsonSchema {
  field.resolve();
  const message = field.resolvedType?.name;
  const target = message && answer && ANSWER_FORMS[message] ? answerFormName(message) : message;
  let schema: JsonSchema = target ? { $ref: `#/components/schemas/${target}` } : { ...(scalarSchemas[field.type] ?? {}) };
  if (field.repeated) schema = { type: 'array', items: schema };
  if (field.map) schema = { type: 'object', additionalProperties: schema };
  if (field.comment) schema = field.resolvedType ? { allOf: [schema], description: field.comment } : { ...schema, description: field.comment };
  return schema;
}

/**
 * The fields the daemon sets in every answer that carries the message: proto3 has no required
 * fields, so the document says it here, and typed clients (the SDK) need no checks for them. Only
 * messages that no request carries are listed, so that no caller has to send these fields (a unit
 * test checks it); the e2e tests check real answers against the list.
 */
export const ALWAYS_SET: Readonly<Record<string, readonly string[]>> = {
  Vm: ['id', 'name', 'state', 'provider', 'createdAt', 'updatedAt', 'spec'],
  VmError: ['code', 'message'],
  VmNetwork: ['ip', 'mac', 'tap', 'gateway'],
  VmDisk: ['name', 'path', 'format', 'readOnly'],
  WorkloadExit: ['exitCode'],
  StartTrace: ['at', 'totalMs', 'steps'],
  StepTiming: ['step', 'ms'],
  VmEvent: ['type', 'vmId', 'name', 'state', 'at'],
  ListVmsResponse: ['vms'],
  CloneVmResponse: ['vms'],
  Snapshot: ['id', 'name', 'vmId', 'vmName', 'createdAt', 'provider', 'vmmVersion', 'sizeBytes', 'pauseMs', 'memoryMib'],
  ListSnapshotsResponse: ['snapshots'],
  VmMetadata: ['values', 'secrets'],
  Image: ['reference', 'digest', 'configDigest', 'platform', 'layers', 'size', 'createdAt', 'config'],
  ImageLayer: ['digest', 'mediaType', 'size'],
  ListImagesResponse: ['images'],
  PullImageProgress: ['reference', 'phase'],
  PruneImagesResponse: ['deleted', 'reclaimedBytes'],
  ApiToken: ['id', 'name', 'scope', 'createdAt'],
  ListTokensResponse: ['tokens'],
  CreateTokenResponse: ['token', 'secret'],
  DoctorResponse: ['problems', 'providers'],
  ProviderReport: ['name', 'usable', 'detail'],
  VersionResponse: ['version', 'nodeVersion', 'providers', 'guestKernel'],
  GuestKernelReport: ['bootDir'],
  PruneNetworksResponse: ['removed'],
};

/**
 * Messages that requests carry too (a VM's spec is sent in CreateVm and answered in every Vm),
 * with the fields every answer has. Answers refer to a copy of the message's schema named
 * `<Message>Answer` that requires those fields (so typed clients read `vm.spec.cores` without a
 * check), while requests keep the plain schema and need not send them. Over HTTP the daemon
 * sends the fields even when they hold their zero value (an empty description).
 */
export const ANSWER_FORMS: Readonly<Record<string, readonly string[]>> = {
  VmSpec: ['name', 'description', 'cores', 'memoryMib', 'kernelArgs', 'driveReadOnly', 'provider', 'hypervisor'],
};

export function answerFormName(message: string): string {
  return `${message}Answer`;
}

/** A message as a JSON object schema; `without` leaves out fields the URL carries (the VM id). */
function messageSchema(type: protobuf.Type, without: readonly string[] = []): JsonSchema {
  const properties: Record<string, JsonSchema> = {};
  const answer = type.name in ALWAYS_SET;
  for (const field of type.fieldsArray) {
    const name = protobuf.util.camelCase(field.name);
    if (!without.includes(name)) properties[name] = fieldSchema(field, answer);
  }
  const required = (ALWAYS_SET[type.name] ?? []).filter((name) => !without.includes(name));
  const unknown = required.filter((name) => !(name in properties));
  if (unknown.length > 0) throw new Error(`ALWAYS_SET names fields ${type.name} does not have: ${unknown.join(', ')}`);
  return { type: 'object', ...(required.length > 0 ? { required } : {}), properties, additionalProperties: false, ...(type.comment ? { description: type.comment } : {}) };
}

const errorCodes = Object.values(ErrorCodes);

const errorSchema: JsonSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: { type: 'string', enum: errorCodes, description: 'stable error code; the HTTP status follows from it' },
        message: { type: 'string' },
        details: { type: 'array', items: { type: 'object', properties: { path: { type: 'string' }, message: { type: 'string' }, location: { type: 'string' }, value: {} } } },
      },
    },
  },
};

const ref = (name: string): JsonSchema => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: JsonSchema, description = 'OK') => ({ description, content: { 'application/json': { schema } } });
/** Every error, on every route, is the Error body; its code says which (see the enum). */
/** The body of a shim call: the flags containerd runs the shim binary with (no proto message: not part of the gRPC API). */
function shimTask(extra: readonly string[]): JsonSchema {
  const names = ['namespace', 'id', 'bundle', 'address', ...extra];
  return { type: 'object', required: names, additionalProperties: false, properties: Object.fromEntries(names.map((n) => [n, { type: 'string' }])) };
}
const failure = { default: json(ref('Error'), 'an error: its code names it (401/403 only on the remote listener)') };
const upgrade = { '101': { description: 'switching to WebSocket' }, ...failure };

/** The proto messages, looked up by name while the document is built. */
class ProtoSource {
  private readonly pkg: protobuf.Namespace;

  constructor() {
    const root = new protobuf.Root();
    root.resolvePath = (_origin, target) => join(PROTO_DIR, target);
    root.loadSync(PROTO_FILES, { alternateCommentMode: true }).resolveAll();
    this.pkg = root.lookup('hypercore.v1') as protobuf.Namespace;
  }

  schemas(): Record<string, JsonSchema> {
    const schemas: Record<string, JsonSchema> = { Error: errorSchema };
    for (const nested of this.pkg.nestedArray) if (nested instanceof protobuf.Type) schemas[nested.name] = messageSchema(nested);
    for (const [message, required] of Object.entries(ANSWER_FORMS)) {
      const plain = schemas[message] as JsonSchema & { properties: Record<string, JsonSchema> };
      const unknown = required.filter((name) => !(name in plain.properties));
      if (unknown.length > 0) throw new Error(`ANSWER_FORMS names fields ${message} does not have: ${unknown.join(', ')}`);
      schemas[answerFormName(message)] = { ...plain, required: [...required], description: `${message} as answers carry it: the fields listed as required are always set` };
    }
    return schemas;
  }

  type(name: string): protobuf.Type {
    return this.pkg.lookupType(name);
  }

  /** A request message as a JSON body, without the fields the path carries. */
  body(message: string, pathFields: readonly string[] = ['id']) {
    return { required: false, content: { 'application/json': { schema: messageSchema(this.type(message), pathFields) } } };
  }

  /** Query parameters from fields of a request message. */
  query(message: string, ...fields: string[]) {
    const type = this.type(message);
    return fields.map((name) => {
      const field = type.fieldsArray.find((f) => protobuf.util.camelCase(f.name) === name);
      if (!field) throw new Error(`${message} has no field ${name}`);
      return { name, in: 'query', required: false, schema: fieldSchema(field) };
    });
  }
}

const vmId = { name: 'id', in: 'path', required: true, description: 'VM id, unique id prefix, or name', schema: { type: 'string' } };
const snapshotId = { ...vmId, description: 'snapshot id, unique id prefix, or name' };
const tokenId = { ...vmId, description: 'token id' };
const metadataKey = { name: 'key', in: 'path', required: true, description: 'a metadata key', schema: { type: 'string' } };
const imageReference = {
  name: 'reference',
  in: 'path',
  required: true,
  description: 'image reference as stored (e.g. 127.0.0.1:5000/team/app:v1); its "/" and ":" are sent as they are, not percent-encoded, since the rest of the path is the reference',
  schema: { type: 'string' },
};
const ndjson = (schema: JsonSchema, description: string) => ({ description, content: { 'application/x-ndjson': { schema } } });
const progress = ndjson(
  { oneOf: [ref('PullImageProgress'), ref('Error')] },
  'one PullImageProgress per line; the last one has phase "done" and the image. A failure after the status line arrives as a last line {"error": {...}}',
);

type Operation = Record<string, unknown> & { operationId: string };

/** One entry per route, keyed as registered with fastify. */
function routeDocs(p: ProtoSource): Record<string, Operation> {
  return {
    'GET /openapi.json': { operationId: 'GetOpenApi', tags: ['meta'], summary: 'this document', responses: { '200': json({ type: 'object' }) } },
    'GET /metrics': {
      operationId: 'GetMetrics',
      tags: ['meta'],
      summary: 'Prometheus metrics (when the daemon serves them)',
      responses: { '200': { description: 'Prometheus text exposition format', content: { 'text/plain': { schema: { type: 'string' } } } }, ...failure },
    },

    'GET /v1/vms': { operationId: 'ListVms', tags: ['vms'], responses: { '200': json(ref('ListVmsResponse')), ...failure } },
    'POST /v1/vms': {
      operationId: 'CreateVm',
      tags: ['vms'],
      requestBody: { required: true, content: { 'application/json': { schema: ref('CreateVmRequest') } } },
      responses: { '201': json(ref('Vm'), 'created and running (with "start": false, created and not booted)'), ...failure },
    },
    'POST /v1/vms/hac': {
      operationId: 'CreateVmFromHac',
      tags: ['vms'],
      summary: 'create (and boot, unless "start": false) a VM from the text of a hac.toml; each problem comes back with its hac.toml:line:column',
      requestBody: {
        required: true,
        content: { 'application/json': { schema: { type: 'object', required: ['hac'], properties: { hac: { type: 'string', maxLength: 65536, description: 'the hac.toml text' }, start: { type: 'boolean' } } } } },
      },
      responses: { '201': json(ref('Vm'), 'created; booting in the background'), ...failure },
    },
    'POST /v1/vms/hac-file': {
      operationId: 'CreateVmFromHacFile',
      tags: ['vms'],
      summary:
        "local socket only (`hypercore spawn`/`create`): create a VM from the text of a hac.toml file of the daemon's host, read as the CLI reads it: messages name the file, its relative paths start from its directory, the files it names must exist",
      requestBody: {
        required: true,
        content: {
          'application/json': {
            schema: {
              type: 'object',
              required: ['hac', 'file'],
              properties: {
                hac: { type: 'string', maxLength: 65536, description: 'the hac.toml text' },
                file: { type: 'string', description: "the hac.toml's absolute path" },
                cwd: { type: 'string', description: 'absolute base of relative override paths (default: the directory of file)' },
                overrides: {
                  type: 'object',
                  additionalProperties: false,
                  description: "the CLI's flags over the file's values (errors name the flag)",
                  properties: {
                    name: { type: 'string' },
                    cores: { type: 'integer' },
                    memoryMib: { type: 'integer' },
                    provider: { type: 'string' },
                    kernel: { type: 'string' },
                    initrd: { type: 'string' },
                    drive: { type: 'string' },
                    kernelArgs: { type: 'string' },
                    accel: { type: 'string' },
                    image: { type: 'string' },
                    command: { type: 'array', items: { type: 'string' } },
                    env: { type: 'array', items: { type: 'string' } },
                    workdir: { type: 'string' },
                    user: { type: 'string' },
                    tty: { type: 'boolean' },
                    network: { type: 'string' },
                  },
                },
                start: { type: 'boolean', description: 'false: define the VM without booting it' },
                detach: { type: 'boolean', description: 'answer once the VMM runs, without waiting for the agent and the workload' },
                pull: { type: 'boolean', description: 'false: an image the daemon lacks fails at once with HC_IMAGE_NOT_FOUND (nothing created) instead of being pulled' },
              },
            },
          },
        },
      },
      responses: { '201': json(ref('Vm'), 'created (and running, unless "start": false or "detach": true)'), ...failure },
    },
    'GET /v1/vms/:id': { operationId: 'GetVm', tags: ['vms'], parameters: [vmId], responses: { '200': json(ref('Vm')), ...failure } },
    'DELETE /v1/vms/:id': { operationId: 'DeleteVm', tags: ['vms'], parameters: [vmId, ...p.query('DeleteVmRequest', 'force')], responses: { '200': json(ref('DeleteVmResponse')), ...failure } },
    'POST /v1/vms/:id/start': { operationId: 'StartVm', tags: ['vms'], parameters: [vmId], responses: { '200': json(ref('Vm')), ...failure } },
    'POST /v1/vms/:id/pause': { operationId: 'PauseVm', tags: ['vms'], parameters: [vmId], responses: { '200': json(ref('Vm')), ...failure } },
    'POST /v1/vms/:id/resume': { operationId: 'ResumeVm', tags: ['vms'], parameters: [vmId], responses: { '200': json(ref('Vm')), ...failure } },
    'POST /v1/vms/:id/stop': { operationId: 'StopVm', tags: ['vms'], parameters: [vmId], requestBody: p.body('StopVmRequest'), responses: { '200': json(ref('Vm')), ...failure } },
    'GET /v1/vms/:id/logs': {
      operationId: 'StreamLogs',
      tags: ['vms'],
      parameters: [vmId, ...p.query('StreamLogsRequest', 'follow')],
      responses: { '200': { description: 'the serial console output (streamed while following)', content: { 'text/plain': { schema: { type: 'string' } } } }, ...failure },
    },
    'GET /v1/vms/:id/exec': {
      operationId: 'Exec',
      tags: ['processes'],
      parameters: [vmId],
      description:
        'WebSocket (Upgrade): the Exec stream. Each text message is one ProcessInput (client) or ProcessOutput (server) in proto3 JSON, bytes as base64; the first client message is {"start": ExecStart}. A failure arrives as an {"error": {...}} message before the close.',
      responses: upgrade,
    },
    'GET /v1/vms/:id/attach': {
      operationId: 'Attach',
      tags: ['processes'],
      parameters: [vmId, ...p.query('AttachStart', 'fromStart')],
      description: 'WebSocket (Upgrade): the Attach stream to the workload main process, as Exec but without a start message.',
      responses: upgrade,
    },
    'GET /v1/vms/:id/serial': {
      operationId: 'SerialConsole',
      tags: ['vms'],
      parameters: [vmId],
      description:
        "WebSocket (Upgrade): the VM's interactive serial console (ttyS0). Binary messages from the daemon are the guest's output; each client message (text or binary) is typed into the guest as is. One client per VM: a second is refused. A refusal or failure arrives as an {\"error\": {...}} text message before the close. QEMU VMs only.",
      responses: upgrade,
    },
    'GET /v1/vms/:id/metadata': { operationId: 'GetMetadata', tags: ['metadata'], parameters: [vmId], description: 'Values as set, secrets as "<secret>".', responses: { '200': json(ref('VmMetadata')), ...failure } },
    'GET /v1/vms/:id/metadata/:key': {
      operationId: 'GetMetadataKey',
      tags: ['metadata'],
      parameters: [vmId, metadataKey],
      description: 'GetMetadata with key: that key only.',
      responses: { '200': json(ref('VmMetadata')), ...failure },
    },
    'POST /v1/vms/:id/metadata': {
      operationId: 'SetMetadata',
      tags: ['metadata'],
      parameters: [vmId],
      requestBody: { ...p.body('SetMetadataRequest'), required: true },
      responses: { '200': json(ref('VmMetadata'), 'the VM\'s metadata after the change, as GetMetadata'), ...failure },
    },
    'POST /v1/vms/:id/snapshots': { operationId: 'CreateSnapshot', tags: ['snapshots'], parameters: [vmId], requestBody: p.body('CreateSnapshotRequest'), responses: { '201': json(ref('Snapshot'), 'taken'), ...failure } },
    'POST /v1/vms/:id/clone': { operationId: 'CloneVm', tags: ['vms'], parameters: [vmId], requestBody: p.body('CloneVmRequest'), responses: { '201': json(ref('CloneVmResponse'), 'the clones, running'), ...failure } },

    'GET /v1/snapshots': { operationId: 'ListSnapshots', tags: ['snapshots'], responses: { '200': json(ref('ListSnapshotsResponse')), ...failure } },
    'GET /v1/snapshots/:id': { operationId: 'GetSnapshot', tags: ['snapshots'], parameters: [snapshotId], responses: { '200': json(ref('Snapshot')), ...failure } },
    'DELETE /v1/snapshots/:id': { operationId: 'DeleteSnapshot', tags: ['snapshots'], parameters: [snapshotId], responses: { '200': json(ref('DeleteSnapshotResponse')), ...failure } },
    'POST /v1/snapshots/:id/spawn': {
      operationId: 'RestoreSnapshot',
      tags: ['snapshots'],
      parameters: [snapshotId],
      requestBody: p.body('RestoreSnapshotRequest'),
      responses: { '201': json(ref('Vm'), 'resumed from the snapshot and running'), ...failure },
    },

    'POST /v1/images/pull': { operationId: 'PullImage', tags: ['images'], requestBody: { required: true, content: { 'application/json': { schema: ref('PullImageRequest') } } }, responses: { '200': progress, ...failure } },
    'POST /v1/images/import': { operationId: 'ImportImage', tags: ['images'], requestBody: { required: true, content: { 'application/json': { schema: ref('ImportImageRequest') } } }, responses: { '200': progress, ...failure } },
    'POST /v1/images/prune': { operationId: 'PruneImages', tags: ['images'], requestBody: p.body('PruneImagesRequest', []), responses: { '200': json(ref('PruneImagesResponse')), ...failure } },
    'GET /v1/images': { operationId: 'ListImages', tags: ['images'], responses: { '200': json(ref('ListImagesResponse')), ...failure } },
    'GET /v1/images/*': { operationId: 'GetImage', tags: ['images'], parameters: [imageReference], responses: { '200': json(ref('Image')), ...failure } },
    'DELETE /v1/images/*': { operationId: 'DeleteImage', tags: ['images'], parameters: [imageReference, ...p.query('DeleteImageRequest', 'force')], responses: { '200': json(ref('DeleteImageResponse')), ...failure } },

    'POST /v1/tokens': {
      operationId: 'CreateToken',
      tags: ['tokens'],
      requestBody: { required: true, content: { 'application/json': { schema: ref('CreateTokenRequest') } } },
      responses: { '201': json(ref('CreateTokenResponse'), 'created; the secret is shown only here'), ...failure },
    },
    'GET /v1/tokens': { operationId: 'ListTokens', tags: ['tokens'], responses: { '200': json(ref('ListTokensResponse')), ...failure } },
    'DELETE /v1/tokens/:id': { operationId: 'RevokeToken', tags: ['tokens'], parameters: [tokenId], responses: { '200': json(ref('ApiToken'), 'revoked'), ...failure } },

    // The two calls of containerd-shim-hypercore-v2 (local socket only; they name paths on this host).
    'POST /v1/shim/start': {
      operationId: 'ShimStart',
      tags: ['containerd'],
      description: "containerd's `start` of a task: the pod's TTRPC socket, served by hypercored",
      requestBody: { required: true, content: { 'application/json': { schema: shimTask(['ttrpcAddress']) } } },
      responses: { '200': json({ type: 'object', properties: { address: { type: 'string', description: 'unix:// address of the pod TTRPC socket' } } }), ...failure },
    },
    'POST /v1/shim/delete': {
      operationId: 'ShimDelete',
      tags: ['containerd'],
      description: "containerd's `delete` of a task it lost: cleans up and tells how the task ended",
      requestBody: { required: true, content: { 'application/json': { schema: shimTask([]) } } },
      responses: { '200': json({ type: 'object', properties: { pid: { type: 'integer' }, exitStatus: { type: 'integer' }, exitedAt: { type: 'string', format: 'date-time' } } }), ...failure },
    },

    'POST /v1/network/prune': { operationId: 'PruneNetworks', tags: ['host'], responses: { '200': json(ref('PruneNetworksResponse')), ...failure } },
    'GET /v1/doctor': { operationId: 'Doctor', tags: ['host'], responses: { '200': json(ref('DoctorResponse')), ...failure } },
    'GET /v1/version': { operationId: 'Version', tags: ['host'], summary: 'versions of hypercored, each VMM and the guest kernel', responses: { '200': json(ref('VersionResponse')), ...failure } },
    'GET /v1/events': {
      operationId: 'WatchEvents',
      tags: ['vms'],
      responses: { '200': ndjson({ oneOf: [ref('VmEvent'), ref('Error')] }, 'one VmEvent per line, as they happen; a client too slow to read gets an {"error": {...}} line and the end'), ...failure },
    },
  };
}

/** `GET /v1/vms/:id` → OpenAPI path `/v1/vms/{id}`; the images' wildcard is the reference. */
export function openApiPath(fastifyUrl: string): string {
  return fastifyUrl.replace(/:([A-Za-z]+)/g, '{$1}').replace(/\*$/, '{reference}');
}

/** The routes the document describes, as `METHOD template` (fastify's form). */
export function documentedRoutes(): string[] {
  return Object.keys(routeDocs(new ProtoSource()));
}

let cached: JsonSchema | undefined;

export function openApiDocument(): JsonSchema {
  if (cached) return cached;
  const proto = new ProtoSource();
  const paths: Record<string, Record<string, Operation>> = {};
  for (const [key, operation] of Object.entries(routeDocs(proto))) {
    const [method, url] = key.split(' ') as [string, string];
    (paths[openApiPath(url)] ??= {})[method.toLowerCase()] = operation;
  }
  cached = {
    openapi: '3.0.3',
    info: {
      title: 'Hypercore API',
      version: '1.0.0',
      description:
        'HTTP/JSON form of the hypercore.v1 services (same names and fields as gRPC, proto3 JSON). On the unix socket no credentials are needed; on the remote listener every call needs a client certificate of the daemon\'s CA (mTLS) or a bearer token whose scope allows it.',
    },
    security: [{}, { bearerToken: [] }],
    paths,
    components: {
      schemas: proto.schemas(),
      securitySchemes: { bearerToken: { type: 'http', scheme: 'bearer', description: 'an API token (hc_<id>.<secret>) on the remote listener' } },
    },
  };
  return cached;
}
