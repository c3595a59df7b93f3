/**
 * Pods: a VM that runs several containers handed over by containerd, each on its own root disk,
 * added and removed while the VM runs. The VM is a "pod VM" (`VmSpec.pod`); its containers are
 * records under it (`PodContainer`), kept in their own store. containerd's sandbox (CRI's pause
 * container, or for `ctr run` the container itself) is the pod's first container, and the VM
 * lives as long as it does.
 */
import type { ProcessStarted } from './pod-agent.js';
import type { VmDisk } from './image.js';

/** `VmSpec.pod`: what makes a VM a pod VM, and which containerd sandbox it serves. */
export interface PodSpec {
  /** containerd's id of the sandbox task (CRI's sandbox id; for `ctr run`, the container's id). */
  sandboxId: string;
  /** containerd namespace of the sandbox. */
  namespace: string;
  /** containerd's address (its gRPC socket): which containerd the pod belongs to. */
  owner: string;
  /** containerd's TTRPC address, where the pod's task events go. */
  events: string;
  /** Root disk slots reserved at boot, so containers can be added without hotplug. */
  slots: number;
  /** The pod's network namespace (made by CNI); the VM's TAP lives there and the guest takes its address. */
  netns?: string;
  /** The guest's network as found in `netns`, attached before the VM is created. */
  network?: PodNetwork;
}

export interface PodNetwork {
  /** TAP in the pod's network namespace, mirrored with the CNI interface. */
  tap: string;
  /** The CNI interface the TAP is mirrored with. */
  device: string;
  mac: string;
  ip: string;
  prefixLength: number;
  gateway: string;
  dns: string[];
}

/** Root disk slots a pod VM gets unless told otherwise: the sandbox plus seven containers. */
export const DEFAULT_POD_SLOTS = 8;

/** The virtio-blk serial of root disk slot `n` (1-based): the guest finds a container's disk by it. */
export function slotSerial(slot: number): string {
  return `hc-slot${slot}`;
}

export type ContainerState = 'created' | 'running' | 'paused' | 'stopped';

/** How a process ended, as containerd reports it. */
export interface ProcessExit {
  /** Exit code, 128 + n for a signal n. */
  status: number;
  /** RFC 3339 with nanoseconds as containerd gives them (ms here). */
  at: string;
  /** The kernel's OOM killer ended a process of the container. */
  oomKilled?: boolean;
}

/** Where containerd reads and writes a process's stdio (FIFO paths, empty for none). */
export interface ProcessStdio {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

/** An extra process run in a container (containerd's exec). */
export interface PodExec {
  id: string;
  stdio: ProcessStdio;
  /** The OCI process (JSON) to run. */
  process: string;
  state: 'created' | 'running' | 'stopped';
  pid?: number;
  exit?: ProcessExit;
  /** Output offset copied to containerd so far (where copying resumes after a daemon restart). */
  outputOffset?: number;
}

/** A container of a pod VM. */
export interface PodContainer {
  /** containerd's task id (unique within the pod's containerd namespace). */
  id: string;
  vmId: string;
  /** containerd's bundle directory. */
  bundle: string;
  /** The root disk slot it occupies while it exists. */
  slot: number;
  /** Its writable root disk in the VM's state directory, and the shared image under it. */
  disk: VmDisk;
  imageKey: string;
  stdio: ProcessStdio;
  state: ContainerState;
  /** Guest pid of its init process, once started. */
  pid?: number;
  exit?: ProcessExit;
  createdAt: string;
  execs: PodExec[];
  /** Output offset of the init process copied to containerd so far (where copying resumes after a daemon restart). */
  outputOffset?: number;
}

/** The processes of pod containers the agent knows: a container's init, or one of its execs. */
export function podProcessId(containerId: string, execId?: string): string {
  return execId ? `${containerId}/${execId}` : containerId;
}

/** One root filesystem mount as containerd hands it over (types.Mount). */
export interface HostMount {
  type: string;
  source: string;
  options: string[];
}

/** Container records, per VM. Each call is atomic. */
export interface ContainerStore {
  put(container: PodContainer): void;
  get(vmId: string, id: string): PodContainer | undefined;
  list(vmId?: string): PodContainer[];
  delete(vmId: string, id: string): void;
}

/** A container's root disk: a shared read-only image of its rootfs, and its own writable layer. */
export interface ContainerDisk {
  disk: VmDisk;
  /** The shared image's cache key (released when the container goes). */
  imageKey: string;
}

/** Turns containerd's rootfs mounts into a root disk for the guest (cached by the snapshot chain). */
export interface RootfsImages {
  prepare(mounts: readonly HostMount[], dir: string, name: string): Promise<ContainerDisk>;
  /** Forgets the per-container layer; images no container uses may be pruned. */
  release(disk: ContainerDisk, inUse: ReadonlySet<string>): Promise<void>;
}

/** The pod's network: a TAP in the pod's network namespace, mirrored with its CNI interface. */
export interface PodNetworks {
  attach(netns: string): Promise<PodNetwork>;
  /** Removes the TAP and the mirroring, if the namespace still exists. Idempotent. */
  detach(netns: string, network: PodNetwork): Promise<void>;
}

export type { ProcessStarted };
