/**
 * Typed encoders/decoders for the agent protocol's messages (agent.proto). Field names are the
 * protobuf names in lowerCamelCase, as everywhere in Hypercore's APIs.
 */
import { messageCodec, type MessageCodec } from '../../ttrpc/message-codec.js';
import agentPb from './generated/agent-pb.js';

export interface ProcessSpec {
  args: string[];
  env?: string[];
  cwd?: string;
  user?: string;
  terminal?: boolean;
  rows?: number;
  cols?: number;
}
export interface HelloRequest { hostVersion?: string }
export interface HelloResponse { agentVersion: string; nodeVersion: string; kernel: string; uptimeMs: number; bootId: string; workloadStarted: boolean }
export interface WorkloadLimits { memoryBytes?: number; pids?: number }
export interface MetadataValues { values: Record<string, string>; secrets: Record<string, string> }
export interface GuestFile { path: string; mode: number; uid: number; gid: number; content: Uint8Array }
export interface StartWorkloadRequest {
  process: ProcessSpec;
  imageDiskSerial: string;
  scratchDiskSerial?: string;
  limits?: WorkloadLimits;
  hostname?: string;
  metadata?: MetadataValues;
  files?: GuestFile[];
  sshAuthorizedKeys?: string[];
  oncePerBoot?: boolean;
}
export interface ProcessStarted { processId: string; pid: number }
export interface CreateProcessRequest { process: ProcessSpec; inWorkload?: boolean }
export interface IoInput { processId?: string; fromOffset?: number; stdin?: Uint8Array; closeStdin?: boolean; windowBytes?: number; consumedBytes?: number; holdOutput?: boolean; create?: CreateProcessRequest }
export interface IoOutput { fd?: number; data?: Uint8Array; offset?: number; exited?: boolean; exitCode?: number; signal?: string; droppedBytes?: number; started?: ProcessStarted }
export interface WaitRequest { processId: string }
export interface ExitStatus { exitCode: number; signal?: string }
export interface SignalRequest { processId: string; signal: string }
export interface ResizeRequest { processId: string; rows: number; cols: number }
export interface ProcessInfo { processId: string; pid: number; args: string[]; terminal: boolean; running: boolean; exitCode?: number; signal?: string; inWorkload: boolean }
export interface ProcessList { processes: ProcessInfo[] }
export interface Stats { uptimeMs: number; load1: number; memTotalBytes: number; memAvailableBytes: number; processes: number }
export interface ShutdownRequest { reboot?: boolean }
export interface GuestNetwork { mac: string; address: string; gateway: string; dns: string[] }
export interface RestoredRequest { unixTimeMs: number; entropy: Uint8Array; hostname: string; machineId: string; network?: GuestNetwork }
export type Empty = Record<string, never>;

/**
 * The message types as static code generated from agent.proto at build time. protobufjs' reflection
 * (protobuf.parse) would generate the same functions at run time, on each type's first use: tens of
 * milliseconds per type in a guest under TCG, on the path from boot to the workload's start.
 */
const types = agentPb.hypercore.agent.v1;

export type Codec<T> = MessageCodec<T>;

export function codec<T>(name: string): Codec<T> {
  const type = Object.hasOwn(types, name) ? types[name] : undefined;
  // Called with constant names when the module loads: a name agent.proto lacks is a programming error.
  if (!type) throw new Error(`agent.proto defines no message hypercore.agent.v1.${name}`);
  // longs as numbers, bytes as Buffers, unset scalars as their defaults, arrays always present.
  return messageCodec<T>(type, { longs: Number, bytes: Buffer, defaults: true, arrays: true });
}

/**
 * What one IoOutput message costs against the Io stream's output credit: its encoded size plus a fixed
 * part, so that a flood of tiny messages is paced as well as a few large ones.
 */
export function ioOutputCost(encoded: Uint8Array): number {
  return encoded.byteLength + 64;
}

export const codecs = {
  Empty: codec<Empty>('Empty'),
  HelloRequest: codec<HelloRequest>('HelloRequest'),
  HelloResponse: codec<HelloResponse>('HelloResponse'),
  StartWorkloadRequest: codec<StartWorkloadRequest>('StartWorkloadRequest'),
  ProcessStarted: codec<ProcessStarted>('ProcessStarted'),
  CreateProcessRequest: codec<CreateProcessRequest>('CreateProcessRequest'),
  IoInput: codec<IoInput>('IoInput'),
  IoOutput: codec<IoOutput>('IoOutput'),
  WaitRequest: codec<WaitRequest>('WaitRequest'),
  ExitStatus: codec<ExitStatus>('ExitStatus'),
  SignalRequest: codec<SignalRequest>('SignalRequest'),
  ResizeRequest: codec<ResizeRequest>('ResizeRequest'),
  ProcessList: codec<ProcessList>('ProcessList'),
  Stats: codec<Stats>('Stats'),
  ShutdownRequest: codec<ShutdownRequest>('ShutdownRequest'),
  MetadataValues: codec<MetadataValues>('MetadataValues'),
  RestoredRequest: codec<RestoredRequest>('RestoredRequest'),
};

/** Method names and their request/response codecs; both sides use this table. */
export const methods = {
  Hello: { request: codecs.HelloRequest, response: codecs.HelloResponse },
  StartWorkload: { request: codecs.StartWorkloadRequest, response: codecs.ProcessStarted },
  CreateProcess: { request: codecs.CreateProcessRequest, response: codecs.ProcessStarted },
  Wait: { request: codecs.WaitRequest, response: codecs.ExitStatus },
  Signal: { request: codecs.SignalRequest, response: codecs.Empty },
  Resize: { request: codecs.ResizeRequest, response: codecs.Empty },
  ListProcesses: { request: codecs.Empty, response: codecs.ProcessList },
  GetStats: { request: codecs.Empty, response: codecs.Stats },
  Shutdown: { request: codecs.ShutdownRequest, response: codecs.Empty },
  SetMetadata: { request: codecs.MetadataValues, response: codecs.Empty },
  Restored: { request: codecs.RestoredRequest, response: codecs.Empty },
} as const;

export type UnaryMethod = keyof typeof methods;
