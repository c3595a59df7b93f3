/**
 * containerd's messages, from the descriptor scripts/shim-protos.mjs generates at build time out
 * of the .proto files Debian ships (containerd 1.6: `runtime/v2/task/shim.proto`, the task events,
 * the TTRPC events service, runtime options, cgroup v2 metrics, runc's ProcessDetails). Field names
 * are lowerCamelCase; 64-bit integers decode as numbers; timestamps are {seconds, nanos}.
 */
import { readFileSync } from 'node:fs';
import protobuf from 'protobufjs';
import { messageCodec, type MessageCodec } from '../../ttrpc/message-codec.js';

const descriptor = JSON.parse(readFileSync(new URL('./containerd.json', import.meta.url), 'utf8')) as { sources: Record<string, string>; root: protobuf.INamespace };
const root = protobuf.Root.fromJSON(descriptor.root);

/** The Debian packages (and versions) the descriptor was generated from. */
export const PROTO_SOURCES: Readonly<Record<string, string>> = descriptor.sources;

export const TASK_SERVICE = 'containerd.task.v2.Task';
export const EVENTS_SERVICE = 'containerd.services.events.ttrpc.v1.Events';
/** The metadata key containerd reads the namespace of a TTRPC call from. */
export const NAMESPACE_METADATA_KEY = 'containerd-namespace-ttrpc';

export interface Codec<T> extends MessageCodec<T> {
  /** The full message name, as an Any's type URL names it. */
  readonly typeName: string;
}

export function codec<T>(name: string): Codec<T> {
  return { typeName: name, ...messageCodec<T>(root.lookupType(name), { longs: Number, bytes: Buffer, defaults: true, arrays: true, enums: Number }) };
}

export interface Timestamp { seconds: number; nanos: number }
export interface AnyMessage { typeUrl: string; value: Uint8Array }

export function timestamp(iso: string | undefined): Timestamp | undefined {
  if (!iso) return undefined;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? undefined : { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

/** An Any holding `message` of `codec`'s type, type URL as containerd's typeurl writes it for these types. */
export function anyOf<T>(c: Codec<T>, message: T): AnyMessage {
  return { typeUrl: c.typeName, value: c.encode(message) };
}

export interface Mount { type: string; source: string; target?: string; options: string[] }

export interface CreateTaskRequest {
  id: string;
  bundle: string;
  rootfs: Mount[];
  terminal: boolean;
  stdin: string;
  stdout: string;
  stderr: string;
  checkpoint: string;
  parentCheckpoint: string;
  options?: AnyMessage | null;
}
export interface CreateTaskResponse { pid: number }
export interface StartRequest { id: string; execId: string }
export interface StartResponse { pid: number }
export interface DeleteRequest { id: string; execId: string }
export interface DeleteResponse { pid: number; exitStatus: number; exitedAt?: Timestamp }
export interface ExecProcessRequest { id: string; execId: string; terminal: boolean; stdin: string; stdout: string; stderr: string; spec?: AnyMessage | null }
export interface ResizePtyRequest { id: string; execId: string; width: number; height: number }
export interface StateRequest { id: string; execId: string }
export interface StateResponse {
  id: string;
  bundle: string;
  pid: number;
  status: number;
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
  exitStatus: number;
  exitedAt?: Timestamp;
  execId: string;
}
export interface KillRequest { id: string; execId: string; signal: number; all: boolean }
export interface CloseIORequest { id: string; execId: string; stdin: boolean }
export interface PidsRequest { id: string }
export interface ProcessInfo { pid: number; info?: AnyMessage }
export interface PidsResponse { processes: ProcessInfo[] }
export interface CheckpointTaskRequest { id: string; path: string }
export interface UpdateTaskRequest { id: string; resources?: AnyMessage | null; annotations: Record<string, string> }
export interface WaitRequest { id: string; execId: string }
export interface WaitResponse { exitStatus: number; exitedAt?: Timestamp }
export interface StatsRequest { id: string }
export interface StatsResponse { stats?: AnyMessage }
export interface ConnectRequest { id: string }
export interface ConnectResponse { shimPid: number; taskPid: number; version: string }
export interface ShutdownRequest { id: string; now: boolean }
export interface PauseRequest { id: string }
export type Empty = Record<string, never>;

/** containerd.v1.types.Status. */
export const TaskStatus = { UNKNOWN: 0, CREATED: 1, RUNNING: 2, STOPPED: 3, PAUSED: 4, PAUSING: 5 } as const;

export interface Envelope { timestamp?: Timestamp; namespace: string; topic: string; event?: AnyMessage }
export interface ForwardRequest { envelope: Envelope }
export interface RuntimeOptions { typeUrl: string; configPath: string }

export const messages = {
  CreateTaskRequest: codec<CreateTaskRequest>('containerd.task.v2.CreateTaskRequest'),
  CreateTaskResponse: codec<CreateTaskResponse>('containerd.task.v2.CreateTaskResponse'),
  StartRequest: codec<StartRequest>('containerd.task.v2.StartRequest'),
  StartResponse: codec<StartResponse>('containerd.task.v2.StartResponse'),
  DeleteRequest: codec<DeleteRequest>('containerd.task.v2.DeleteRequest'),
  DeleteResponse: codec<DeleteResponse>('containerd.task.v2.DeleteResponse'),
  ExecProcessRequest: codec<ExecProcessRequest>('containerd.task.v2.ExecProcessRequest'),
  ResizePtyRequest: codec<ResizePtyRequest>('containerd.task.v2.ResizePtyRequest'),
  StateRequest: codec<StateRequest>('containerd.task.v2.StateRequest'),
  StateResponse: codec<StateResponse>('containerd.task.v2.StateResponse'),
  KillRequest: codec<KillRequest>('containerd.task.v2.KillRequest'),
  CloseIORequest: codec<CloseIORequest>('containerd.task.v2.CloseIORequest'),
  PidsRequest: codec<PidsRequest>('containerd.task.v2.PidsRequest'),
  PidsResponse: codec<PidsResponse>('containerd.task.v2.PidsResponse'),
  CheckpointTaskRequest: codec<CheckpointTaskRequest>('containerd.task.v2.CheckpointTaskRequest'),
  UpdateTaskRequest: codec<UpdateTaskRequest>('containerd.task.v2.UpdateTaskRequest'),
  WaitRequest: codec<WaitRequest>('containerd.task.v2.WaitRequest'),
  WaitResponse: codec<WaitResponse>('containerd.task.v2.WaitResponse'),
  StatsRequest: codec<StatsRequest>('containerd.task.v2.StatsRequest'),
  StatsResponse: codec<StatsResponse>('containerd.task.v2.StatsResponse'),
  ConnectRequest: codec<ConnectRequest>('containerd.task.v2.ConnectRequest'),
  ConnectResponse: codec<ConnectResponse>('containerd.task.v2.ConnectResponse'),
  ShutdownRequest: codec<ShutdownRequest>('containerd.task.v2.ShutdownRequest'),
  PauseRequest: codec<PauseRequest>('containerd.task.v2.PauseRequest'),
  ResumeRequest: codec<PauseRequest>('containerd.task.v2.ResumeRequest'),
  Empty: codec<Empty>('google.protobuf.Empty'),
  ForwardRequest: codec<ForwardRequest>('containerd.services.events.ttrpc.v1.ForwardRequest'),
  RuntimeOptions: codec<RuntimeOptions>('runtimeoptions.v1.Options'),
  Any: codec<AnyMessage>('google.protobuf.Any'),
};

/** Task events (package containerd.events), each with the topic containerd files it under. */
export const events = {
  create: { topic: '/tasks/create', codec: codec<{ containerId: string; bundle: string; rootfs: Mount[]; io: { stdin: string; stdout: string; stderr: string; terminal: boolean }; checkpoint: string; pid: number }>('containerd.events.TaskCreate') },
  start: { topic: '/tasks/start', codec: codec<{ containerId: string; pid: number }>('containerd.events.TaskStart') },
  exit: { topic: '/tasks/exit', codec: codec<{ containerId: string; id: string; pid: number; exitStatus: number; exitedAt?: Timestamp }>('containerd.events.TaskExit') },
  delete: { topic: '/tasks/delete', codec: codec<{ containerId: string; pid: number; exitStatus: number; exitedAt?: Timestamp; id: string }>('containerd.events.TaskDelete') },
  oom: { topic: '/tasks/oom', codec: codec<{ containerId: string }>('containerd.events.TaskOOM') },
  execAdded: { topic: '/tasks/exec-added', codec: codec<{ containerId: string; execId: string }>('containerd.events.TaskExecAdded') },
  execStarted: { topic: '/tasks/exec-started', codec: codec<{ containerId: string; execId: string; pid: number }>('containerd.events.TaskExecStarted') },
  paused: { topic: '/tasks/paused', codec: codec<{ containerId: string }>('containerd.events.TaskPaused') },
  resumed: { topic: '/tasks/resumed', codec: codec<{ containerId: string }>('containerd.events.TaskResumed') },
} as const;

export type TaskEventName = keyof typeof events;

/** runc's ProcessDetails: the exec id of a pid in Pids, which `ctr task ps` shows. */
export const processDetails = codec<{ execId: string }>('containerd.runc.v1.ProcessDetails');

export interface CgroupV2Metrics {
  pids?: { current: number; limit: number };
  cpu?: Record<string, number>;
  memory?: Record<string, number | string>;
  io?: { usage: { major: number; minor: number; rbytes: number; wbytes: number; rios: number; wios: number }[] };
  memoryEvents?: { low: number; high: number; max: number; oom: number; oomKill: number };
}
export const cgroupV2Metrics = codec<CgroupV2Metrics>('io.containerd.cgroups.v2.Metrics');

/** The fields of a message type (for mapping cgroup file keys onto them). */
export function fieldNames(typeName: string): string[] {
  return Object.keys(root.lookupType(typeName).fields);
}
