/**
 * Ports: the interfaces the core needs from the outside world. Adapters (store/, providers/,
 * daemon/) implement them; the core imports nothing but these.
 */
import type { NetworkSpec, ProviderName, Vm, VmEvent, VmSpec, VmState, VmError } from './vm.js';
import type { Image, PullProgress, VmDisk } from './image.js';
import type { AgentEndpoint } from './agent.js';
import type { Snapshot } from './snapshot.js';
import type { StepTiming } from './create/plan.js';

/** Persistent VM records. Implementations must make each call atomic. */
export interface VmStore {
  insert(vm: Vm): void;
  /** Replaces the record with the same id; returns the stored value. */
  update(vm: Vm): Vm;
  get(id: string): Vm | undefined;
  findByName(name: string): Vm | undefined;
  /** All VMs whose id starts with `prefix`. */
  findByIdPrefix(prefix: string): Vm[];
  list(): Vm[];
  delete(id: string): void;
}

export type AgentChannel = 'virtio-serial' | 'vsock';
export type KernelFormat = 'bzimage' | 'elf';

/** What a provider can do, so planners ask instead of testing provider names. */
export interface ProviderCapabilities {
  pause: boolean;
  /** Saves a paused guest's memory and device state (`saveSnapshot`) and starts new VMMs from it (`restore`). */
  snapshot: boolean;
  /** Agent channels the VMM offers, preferred first; the guest is told which one to use. */
  agentChannels: readonly AgentChannel[];
  diskFormats: readonly ('raw' | 'qcow2')[];
  hotplug: boolean;
  /** Kernel image formats the VMM loads: a compressed bzImage (`vmlinuz`) and/or an uncompressed ELF (`vmlinux`). */
  kernelFormats: readonly KernelFormat[];
}

/** What the guest is to boot: a kernel, an initrd and its command line (without the VMM's own arguments). */
export interface BootPlan {
  kernel: string;
  initrd?: string;
  /** Kernel arguments of the guest boot contract (root, address, agent channel, ...) and the user's, last. */
  args: string[];
}

/** What the guest boot contract needs to know about a VM. */
export interface BootInput {
  spec: VmSpec;
  /** Kernel formats the provider loads (for the default kernel). */
  kernelFormats: readonly KernelFormat[];
  /** Absent for a kernel-only VM. */
  rootDisk?: { readOnly: boolean };
  network?: NetworkAttachment;
  /** The agent's channel, for agent VMs. */
  agentChannel?: AgentChannel;
  /** The VM's machine id, for agent VMs (the guest binds it over the workload's /etc/machine-id). */
  machineId?: string;
}

/** The guest boot contract (guest/): default kernel and initramfs, and the `hc.*` kernel arguments. */
export interface GuestBoot {
  plan(input: BootInput): BootPlan;
}

/** Where a VM's files live: `stateDir` survives reboots (root dir), `runDir` is runtime (sockets, pidfile). */
export interface VmPaths {
  stateDir: string;
  runDir: string;
  consoleLog: string;
}

export interface LaunchRequest {
  vmId: string;
  spec: VmSpec;
  paths: VmPaths;
  /** Kernel, initrd and the guest's kernel arguments; the provider adds its own (console, ...) before them. */
  boot: BootPlan;
  /** The disk the guest boots from: the spec's drive, or the guest system image; absent for a kernel-only VM. */
  rootDisk?: { path: string; readOnly: boolean };
  /** Extra disks after the root drive, in the order the guest should see them. */
  disks: readonly VmDisk[];
  /** Give the guest an agent channel (see Provider.agentEndpoint). */
  agent: boolean;
  /** A NIC on this TAP, and what the guest should configure (on its kernel command line). */
  network?: NetworkAttachment;
  /** Pod VMs: root disk slots (empty until `swapDisk` fills one), serials `hc-slot1`... */
  slots?: number;
  /** Run the VMM in this network namespace (a pod's, where its TAP is). */
  netns?: string;
}

/**
 * What a provider wrote into a snapshot directory: the guest's memory and device state, in the
 * VMM's own formats. Only the same VMM version reads them back (device state layouts change
 * between versions), so the version is recorded and a restore elsewhere is refused.
 */
export interface VmmSnapshot {
  /** The VMM's version as `describe()` reports it. */
  vmmVersion: string;
  /** The files written, as names relative to the snapshot directory (memory, device state, the provider's notes). */
  files: string[];
}

/** A VMM started from a snapshot: the same devices as the saved VM, on this VM's own disks, TAP and sockets. */
export interface RestoreRequest extends LaunchRequest {
  snapshot: { dir: string; vmm: VmmSnapshot };
  /**
   * Called once the VMM runs and before the guest resumes, if the provider can (a failure fails the
   * restore): the agent's channel is opened then, so the resumed guest never sees its host gone.
   */
  beforeResume?: () => Promise<void>;
}

/** A VMM process that runs detached from the daemon. */
export interface VmmProcess {
  pid: number;
}

export type VmmStatus = 'running' | 'paused' | 'shutdown' | 'gone';

/** A VMM as the provider finds it: its status, and its pid while it exists. */
export interface VmmInfo {
  status: VmmStatus;
  pid?: number;
}

/** Why a VMM went away, as far as the provider can tell. */
export interface VmmExit {
  /** `stopped` for a clean guest power-off, `failed` for anything else. */
  outcome: 'stopped' | 'failed';
  reason: string;
}

/** What `doctor` and `provider = "auto"` learn of a provider on this host. */
export interface ProviderReport {
  name: ProviderName;
  usable: boolean;
  /** The VMM's version as it reports it, when it could be run. */
  version?: string;
  /** Why it is unusable, or how it would run (e.g. "KVM" or "TCG emulation"). */
  detail: string;
}

export interface Provider {
  readonly name: ProviderName;
  readonly capabilities: ProviderCapabilities;
  /** Resolves when the provider's binary can be used; rejects with ProviderUnavailableError otherwise. */
  checkAvailable(spec: VmSpec): Promise<void>;
  /**
   * Whether the provider can run VMs on this host with `spec`'s settings (binary present, version,
   * KVM usable), and how; never throws. `provider = "auto"` picks the first usable one in the
   * registry's order, and `doctor` lists them all.
   */
  describe(spec?: VmSpec): Promise<ProviderReport>;
  /** Starts the VMM detached (it must outlive the daemon). Rejects with the VMM's stderr tail on failure. */
  launch(req: LaunchRequest): Promise<VmmProcess>;
  /**
   * Live status of a VMM launched earlier, e.g. after a daemon restart. Must not hang. Without a
   * pid, the provider looks for its own record (pidfile) of a VMM for this VM, so a VMM launched
   * by a daemon that died before recording its pid is still found (and its pid returned).
   */
  status(vmId: string, paths: VmPaths, pid: number | undefined): Promise<VmmInfo>;
  /**
   * Watches a running VMM and calls `onExit` once when it goes away. Returns a function that
   * stops watching without touching the VMM.
   */
  watch(vmId: string, paths: VmPaths, pid: number, onExit: (exit: VmmExit) => void): () => void;
  /** Freezes the guest's vCPUs; its memory and devices stay as they are (only when `capabilities.pause`). */
  pause?(vmId: string, paths: VmPaths, pid: number): Promise<void>;
  /** Lets a paused guest run on. */
  resume?(vmId: string, paths: VmPaths, pid: number): Promise<void>;
  /**
   * Puts `disk` behind root disk slot `slot` (1-based) of a running VM launched with `slots`, or
   * empties the slot (`undefined`). The guest sees the slot's size change; no hotplug is needed.
   */
  swapDisk?(vmId: string, paths: VmPaths, slot: number, disk: VmDisk | undefined): Promise<void>;
  /**
   * Writes a paused guest's memory and device state into `dir` (only when `capabilities.snapshot`);
   * the guest stays paused, so the caller can copy its disks at the same instant. Rejects with
   * SnapshotUnsupportedError when this VMM cannot be saved (e.g. its memory is a private copy).
   */
  saveSnapshot?(vmId: string, paths: VmPaths, pid: number, dir: string): Promise<VmmSnapshot>;
  /**
   * Starts a new VMM whose guest resumes from a snapshot instead of booting; resolves once the guest
   * runs. Rejects with SnapshotIncompatibleError, before starting anything, when the snapshot was
   * saved by another VMM version or accelerator.
   */
  restore?(req: RestoreRequest): Promise<VmmProcess>;
  /** Asks the guest to power off; resolves when the VMM has exited or `timeoutMs` passed (returns whether it exited). */
  shutdown(vmId: string, paths: VmPaths, pid: number, timeoutMs: number): Promise<boolean>;
  /** Ends the VMM at once (pidfile when `pid` is unknown). Idempotent: a VMM that is already gone is fine. */
  kill(vmId: string, paths: VmPaths, pid: number | undefined): Promise<void>;
  /**
   * The unix socket of a running VM's interactive serial console (ttyS0), when the VMM serves one;
   * providers whose serial console is the VMM's stdout have none.
   */
  serialConsole?(paths: VmPaths): string;
  /** Where the host reaches the agent of a VM launched with `agent: true`. */
  agentEndpoint(vmId: string, paths: VmPaths): AgentEndpoint;
  /** Removes runtime files (sockets, pidfiles) the provider created for this VM. Idempotent. */
  cleanup(vmId: string, paths: VmPaths): Promise<void>;
}

export interface ProviderRegistry {
  get(name: ProviderName): Provider | undefined;
  /** Providers in order of preference, for `provider = "auto"`. */
  all(): readonly Provider[];
}

/** Creates and removes a VM's directories. */
export interface VmFiles {
  paths(vmId: string): VmPaths;
  create(vmId: string): Promise<VmPaths>;
  remove(vmId: string): Promise<void>;
}

/** Snapshot records. */
export interface SnapshotStore {
  insert(snapshot: Snapshot): void;
  update(snapshot: Snapshot): void;
  get(id: string): Snapshot | undefined;
  findByName(name: string): Snapshot | undefined;
  findByIdPrefix(prefix: string): Snapshot[];
  list(): Snapshot[];
  delete(id: string): void;
}

/** A snapshot's directory, and the copies that give it (and VMs restored from it) disks of that instant. */
export interface SnapshotFiles {
  /** The snapshot's own directory (files 0600). */
  dir(snapshotId: string): string;
  create(snapshotId: string): Promise<string>;
  remove(snapshotId: string): Promise<void>;
  /** A copy of a disk as it is now: sparse, and a reflink where the filesystem can. */
  copyDisk(source: string, target: string): Promise<void>;
  /** Keeps a shared read-only file (a hard link, else a copy), so it outlives the original's removal. */
  keep(source: string, target: string): Promise<void>;
  /** Bytes the directory takes on disk. */
  sizeOf(snapshotId: string): Promise<number>;
}

/** Local image records. */
export interface ImageStore {
  put(image: Image): void;
  get(reference: string): Image | undefined;
  /** Images whose manifest digest is `digest` (several tags may share one). */
  findByDigest(digest: string): Image[];
  list(): Image[];
  delete(reference: string): void;
}

/** How a VM's writable disks over an image are made. */
export interface VmDiskOptions {
  /** Disk formats the VMM reads. */
  formats: readonly ('raw' | 'qcow2')[];
  /** Most the VM can write to its image disk, in MiB (`hardware.disk_size`). */
  sizeMib: number;
  /**
   * True when the image is the agent's workload (the guest joins the read-only image and a scratch
   * disk with overlayfs); false when it is an extra disk of a VM that boots its own drive.
   */
  workload: boolean;
}

/** Turns an image reference into disks for one VM: pulls and builds what is missing (cached by digest). */
export interface ImageProvisioner {
  /** The stored image for a reference, if any (no pull). */
  find(reference: string): Image | undefined;
  /** Pulls (if needed) and builds the block image; resolves to the stored image. */
  ensure(reference: string, onProgress?: (p: PullProgress) => void): Promise<Image>;
  /**
   * Pulls and builds what is missing, then creates the VM's writable disks over the image's shared
   * read-only block image, with no image prune in between. `record` runs before any prune can: it
   * must make the VM's use of the image visible (to `usersOf`), or a prune could take the image.
   */
  provision(reference: string, stateDir: string, disk: VmDiskOptions, record: (image: Image, disks: VmDisk[]) => void, onProgress?: (p: PullProgress) => void): Promise<Image>;
}

/** IP address leases, persisted so they survive restarts and are never handed out twice. */
export interface LeaseStore {
  /** The VM's lease in `subnet`, or a new one picked by `choose` from the addresses not in use (atomically). */
  claim(subnet: string, vmId: string, choose: (used: Set<string>) => string): string;
  release(vmId: string): void;
  all(): { subnet: string; ip: string; vmId: string }[];
}

/** What a VM's network looks like once attached: the host side (TAP) and what the guest must configure. */
export interface NetworkAttachment {
  tap: string;
  mac: string;
  ip: string;
  prefixLength: number;
  gateway: string;
  dns: string[];
  /**
   * The host serves this guest's metadata endpoint (169.254.169.254 is routed to the gateway, as
   * in a cloud); otherwise the agent serves it inside the guest.
   */
  metadataOnHost?: boolean;
}

/** Host networking for VMs (bridge, TAP, leases, NAT, port forwards). Every call is idempotent. */
export interface VmNetworks {
  /** Creates everything the VM's network needs; on failure, removes what it created. */
  attach(vmId: string, spec: NetworkSpec, hostInterface?: string): Promise<NetworkAttachment>;
  /** Removes the VM's TAP, rules and lease. */
  detach(vmId: string): Promise<void>;
  /** Gives back what only a running VM holds (TAP, port forwards, MAC); keeps its address lease. */
  release(vmId: string): Promise<void>;
  /** Removes TAPs, rules and leases that belong to no VM in `vmIds`. */
  prune(vmIds: ReadonlySet<string>): Promise<string[]>;
  /** Describes what `prune` would remove. */
  leftovers(vmIds: ReadonlySet<string>): string[];
}

/** The guest system image (Node, crun, the agent): the root disk of VMs whose workload is an OCI image. */
export interface GuestSystem {
  /** Builds it if its inputs changed; resolves to the image's path. */
  rootDisk(): Promise<string>;
}

/**
 * Measurements of what the service does, for metrics: told after the fact, never asked, so an
 * observer cannot change an outcome. Every method is optional.
 */
export interface VmObserver {
  /** A create or start brought the VM up (for an image VM: its workload runs); `timings` are its plan's steps. */
  booted?(vm: Vm, operation: 'create' | 'start', timings: readonly StepTiming[]): void;
  /** A VM came back from a snapshot (warm start) in `seconds`. */
  restored?(vm: Vm, seconds: number): void;
}

export interface Clock {
  now(): Date;
}

export interface IdGenerator {
  newVmId(): string;
  /** A snapshot id (defaults to the VM id form). */
  newSnapshotId?(): string;
}

/** Minimal structured logger the core may use (pino satisfies it). */
export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

export type VmEventListener = (event: VmEvent) => void;

export type { ProviderName, Vm, VmEvent, VmSpec, VmState, VmError, Image, PullProgress, VmDisk, Snapshot, StepTiming };
