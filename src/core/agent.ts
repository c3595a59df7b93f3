/**
 * What the core needs from the agent inside a guest: start the workload, run processes, stream
 * their IO. The adapter (agent-client/) speaks TTRPC; the core sees only these shapes.
 */
import type { GuestFile, MetadataValues } from './metadata.js';

import type { PodAgent } from './pod-agent.js';

/** A process to run in the guest. */
export interface ProcessSpec {
  args: string[];
  env?: string[];
  cwd?: string;
  /** uid[:gid], numeric. */
  user?: string;
  terminal?: boolean;
  rows?: number;
  cols?: number;
}

export interface ExitStatus {
  exitCode: number;
  /** Signal name when the process was killed by one. */
  signal?: string;
}

/** One event of a process's IO: output, or its end. */
export type ProcessEvent =
  | { kind: 'output'; fd: 1 | 2; data: Uint8Array; offset: number }
  | { kind: 'exit'; status: ExitStatus };

/** A live IO session with one process (stdin in, output and exit out). Closing it leaves the process running. */
export interface ProcessIo extends AsyncIterable<ProcessEvent> {
  write(data: Uint8Array): Promise<void>;
  closeStdin(): Promise<void>;
  close(): void;
}

export interface WorkloadStart {
  process: ProcessSpec;
  imageDiskSerial: string;
  scratchDiskSerial?: string;
  memoryLimitBytes?: number;
  pidsLimit?: number;
  hostname?: string;
  /** Values and secrets the guest serves from the start. */
  metadata?: MetadataValues;
  /** Written into the workload's root filesystem before it starts, as are the SSH keys. */
  files?: GuestFile[];
  sshAuthorizedKeys?: string[];
}

/** A restored guest's new identity and state, applied by its agent (see identity.ts). */
export interface GuestIdentity {
  /** The host's time (ms since the epoch) when it was sent; the guest clock jumps to it. */
  unixTimeMs: number;
  /** Fresh host entropy, mixed into the guest kernel's pool before it reseeds. */
  entropy: Uint8Array;
  hostname: string;
  machineId: string;
  /** This VM's network: the agent sets eth0's MAC, address, route and DNS. */
  network?: { mac: string; address: string; gateway: string; dns: string[] };
}

export interface AgentInfo {
  agentVersion: string;
  bootId: string;
  uptimeMs: number;
  workloadStarted: boolean;
}

/** A connection to one guest's agent. */
export interface AgentSession {
  hello(): Promise<AgentInfo>;
  startWorkload(start: WorkloadStart): Promise<{ processId: string; pid: number }>;
  /**
   * The process's IO from output offset `fromOffset`. The process waits for this reader (its output
   * pauses while the reader is behind, nothing is lost) unless `follow` is set: a follower that falls
   * behind skips output instead, so a slow follower never slows the process.
   */
  io(processId: string, fromOffset?: number, options?: { follow?: boolean }): ProcessIo;
  /** Starts a process (in the workload's container when `inWorkload`) and opens its IO from offset 0, in one round trip where the agent can. */
  exec(spec: ProcessSpec, inWorkload: boolean): Promise<{ processId: string; pid: number; io: ProcessIo }>;
  signal(processId: string, signal: string): Promise<void>;
  resize(processId: string, rows: number, cols: number): Promise<void>;
  wait(processId: string): Promise<ExitStatus>;
  shutdown(): Promise<void>;
  /** Replaces the values and secrets the guest serves. */
  setMetadata(metadata: MetadataValues): Promise<void>;
  /** Tells a guest resumed from a snapshot who it is now (clock, entropy, hostname, machine id, network). */
  restored(identity: GuestIdentity): Promise<void>;
  close(): void;
  /** Resolves when the connection is gone. */
  readonly closed: Promise<void>;
  /** The container calls of a pod VM's agent (adapters that speak them). */
  containers?(): PodAgent;
}

/** Where a provider exposes a VM's agent channel. */
export type AgentEndpoint = { kind: 'unix'; path: string } | { kind: 'hybrid-vsock'; path: string; port: number };

/** Options of {@link AgentConnector.connect}. */
export interface AgentConnectOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  /** Called once a `unix` channel's socket is connected, before the handshake (which needs the agent). */
  onOpen?: () => void;
}

export interface AgentConnector {
  /** Connects and completes the channel handshake; waits for the agent up to `timeoutMs`. */
  connect(endpoint: AgentEndpoint, options: AgentConnectOptions): Promise<AgentSession>;
}
