/** What the core needs from a pod VM's agent: its containers (see agent/containers.ts). */

export interface ProcessStarted {
  processId: string;
  pid: number;
}

export interface GuestContainerCreate {
  containerId: string;
  /** The slot's virtio serial: where the agent finds the container's root disk. */
  diskSerial: string;
  /** OCI runtime config for the guest (JSON). */
  config: Uint8Array;
  /** Files the config binds, copied from the host. */
  files: { name: string; content: Uint8Array; mode: number }[];
  /** Join these namespaces of the sandbox container (ipc, uts, pid). */
  sandboxId?: string;
  shareNamespaces: string[];
}

export interface GuestTerminal {
  terminal: boolean;
  rows?: number;
  cols?: number;
}

/** cgroup v2 numbers of a container, as the agent read them. */
export interface GuestContainerStats {
  cpu: Record<string, number>;
  memory: Record<string, number>;
  memoryEvents: Record<string, number>;
  memoryCurrent: number;
  memoryMax: number;
  swapCurrent: number;
  swapMax: number;
  pidsCurrent: number;
  pidsMax: number;
  io: { major: number; minor: number; values: Record<string, number> }[];
}

export interface PodAgent {
  createContainer(req: GuestContainerCreate): Promise<void>;
  startContainer(containerId: string, term: GuestTerminal): Promise<ProcessStarted>;
  execContainer(containerId: string, execId: string, processJson: Uint8Array, term: GuestTerminal): Promise<ProcessStarted>;
  killContainer(containerId: string, signal: string, all: boolean): Promise<void>;
  pauseContainer(containerId: string): Promise<void>;
  resumeContainer(containerId: string): Promise<void>;
  deleteContainer(containerId: string): Promise<void>;
  /** New cgroup limits (OCI LinuxResources JSON). */
  updateContainer(containerId: string, resourcesJson: Uint8Array): Promise<void>;
  containerStatus(containerId: string): Promise<{ oomKills: number; paused: boolean }>;
  containerStats(containerId: string): Promise<GuestContainerStats>;
  containerPids(containerId: string): Promise<number[]>;
}
