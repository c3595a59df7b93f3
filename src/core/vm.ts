/** The domain model: what a VM is, what it was asked to be, and the states it moves through. */
import type { VmDisk } from './image.js';
import type { PodSpec } from './pod.js';
import type { LaunchRecord } from './snapshot.js';

export const providerNames = ['qemu', 'firecracker', 'cloud-hypervisor'] as const;
export type ProviderName = (typeof providerNames)[number];
export type ProviderChoice = ProviderName | 'auto';
export type AccelMode = 'auto' | 'kvm' | 'tcg';

/**
 * Per-provider settings from `[hypervisor.<name>]`, keyed by each provider's settings key
 * (`qemu`, `firecracker`, `cloudHypervisor`). Each provider validates and reads its own object;
 * the core passes them through.
 */
export type HypervisorSettings = Readonly<Record<string, Readonly<Record<string, unknown>>>>;

/**
 * How the VM runs its image's process (`[workload]` in hac.toml), when it boots Hypercore's guest
 * system image and runs `VmSpec.image` under the in-guest agent. Unset fields keep the image
 * config's value (Entrypoint, Cmd, Env, WorkingDir, User).
 */
export interface WorkloadSpec {
  /** Replaces the image's Entrypoint; `[]` clears it. */
  entrypoint?: string[];
  /** Replaces the image's Cmd (the arguments after the entrypoint); `[]` clears it. */
  cmd?: string[];
  /** `KEY=VALUE` entries added to the image's Env; a KEY given here wins over the image's. */
  env?: string[];
  /** Absolute working directory in the image's filesystem; replaces the image's WorkingDir. */
  workdir?: string;
  /** Numeric `uid` or `uid:gid` to run as; replaces the image's User. */
  user?: string;
  /** Give the process a terminal (a pty) instead of pipes. */
  tty: boolean;
  /** Most processes (and threads) the workload may have (its cgroup's pids.max). */
  pidsLimit?: number;
  /** Memory limit of the workload's cgroup in MiB; at most the VM's `memoryMib`. */
  memoryLimitMib?: number;
}

/**
 * A validated request for a VM. Paths are absolute (resolved against the hac.toml's folder);
 * an unset `kernel` / `initrd` means "the boot kernel that set-up installed".
 * At least one of `drive` and `image` is set: with `drive`, the VM boots that disk as its root
 * (and `image`, if also set, is attached as an extra disk); without `drive`, the VM boots
 * Hypercore's guest system image and runs `image` as its workload under the in-guest agent.
 */
/** `[network]`: how the VM is connected (absent: no network device). */
export interface NetworkSpec {
  /** nat: Hypercore's bridge and NAT; bridge: a TAP on an existing host bridge (static ip). */
  mode: 'nat' | 'bridge';
  /** mode bridge: the host bridge to join. */
  bridge?: string;
  /** mode bridge: the network's gateway (nat: the subnet's first address). */
  gateway?: string;
  /** IPv4 CIDR of the managed bridge; its first address is the gateway. */
  subnet: string;
  /** Static guest address; default: the next free one. */
  ip?: string;
  mac?: string;
  dns: string[];
  /** Port forwards, "[host_ip:]host_port:guest_port[/tcp|udp]". */
  ports: string[];
  /** mode nat: false lets the VM reach the other VMs of its bridge that have it false too (absent: true). */
  isolate?: boolean;
  /** mode nat: ports on the gateway address the guest may reach, "port[/tcp|udp]" (absent: none but DNS). */
  hostPorts?: string[];
}

/** A file written into the workload's root filesystem before the workload starts (`[[metadata.files]]`). */
export interface MetadataFileSpec {
  /** Absolute path inside the workload's root filesystem. */
  path: string;
  /** Octal permission bits as written in hac.toml, e.g. "0640". */
  mode: string;
  /** Numeric "uid" or "uid:gid" that owns the file. */
  owner: string;
  /** The file's text (UTF-8). */
  content: string;
}

/**
 * `[metadata]`: what the guest's agent hands the workload (image VMs only). Values and secrets are
 * served inside the guest at http://169.254.169.254/v1/metadata; secrets never leave the daemon's
 * store on the host side. Files and SSH keys are written into the workload's root filesystem.
 */
export interface MetadataSpec {
  values: Record<string, string>;
  secrets: Record<string, string>;
  /** Lines of /root/.ssh/authorized_keys in the workload's root filesystem. */
  sshAuthorizedKeys: string[];
  files: MetadataFileSpec[];
}

export interface VmSpec {
  name: string;
  description: string;
  cores: number;
  memoryMib: number;
  /** Most the VM can write onto its image disk, in MiB (`hardware.disk_size`); unset: the default. */
  diskSizeMib?: number;
  kernel?: string;
  initrd?: string;
  kernelArgs: string;
  /** Root disk to boot (`drive` in hac.toml); unset: boot the guest system image and run `image`. */
  drive?: string;
  driveReadOnly: boolean;
  /** OCI image reference (`ref` in hac.toml): the workload without `drive`, an extra disk with it. */
  image?: string;
  /** How `image`'s process runs when it is the workload (`[workload]` in hac.toml). */
  workload?: WorkloadSpec;
  /** Host interface for outbound traffic (`interface` in hac.toml), used once networking lands. */
  hostInterface?: string;
  provider: ProviderChoice;
  hypervisor: HypervisorSettings;
  network?: NetworkSpec;
  /** A pod VM: it runs the containers containerd hands over (see pod.ts), not an image of its own. */
  pod?: PodSpec;
  /** Configuration, secrets, files and SSH keys for the guest (`[metadata]`; image VMs only). */
  metadata?: MetadataSpec;
}

/** `hardware.disk_size` when a spec has none (records from before it existed): room for package installs. */
export const DEFAULT_DISK_SIZE_MIB = 4096;

/**
 * What a VM boots: its own root disk (`drive`), an OCI image run by the in-guest agent (`ref`
 * without `drive`), containers containerd hands over (`pod`: the guest system image and its agent,
 * with root disk slots), or only a kernel and initrd (neither: unikernels, initramfs-only guests).
 */
export type VmKind = 'drive' | 'image' | 'pod' | 'kernel';

/** Only which of the fields are present counts (so a VM as the API answers it works too). */
export function vmKind(spec: { drive?: unknown; image?: unknown; pod?: unknown }): VmKind {
  if (spec.drive !== undefined) return 'drive';
  if (spec.pod !== undefined) return 'pod';
  return spec.image !== undefined ? 'image' : 'kernel';
}

export const vmStates = ['creating', 'created', 'starting', 'running', 'paused', 'stopping', 'stopped', 'failed', 'deleting'] as const;
export type VmState = (typeof vmStates)[number];

export interface VmError {
  code: string;
  message: string;
}

export interface Vm {
  id: string;
  name: string;
  state: VmState;
  provider: ProviderName;
  /** Process id of the VMM while it runs. */
  pid?: number;
  createdAt: string;
  updatedAt: string;
  /** When the VMM was last launched. */
  startedAt?: string;
  spec: VmSpec;
  /** Why the VM last stopped or failed, when that was not a user's request. */
  error?: VmError;
  /** Disks besides the root drive (the image's copy-on-write disk), kept for restarts. */
  disks?: VmDisk[];
  /** Manifest digest of `spec.image` when the VM was created. */
  imageDigest?: string;
  /** The VM's network as attached (address, MAC, host TAP). */
  network?: { ip: string; mac: string; tap: string; gateway: string };
  /** How the workload's main process ended, once it has (agent VMs). */
  workloadExit?: { exitCode: number; signal?: string };
  /** Why this provider runs the VM: with `provider = "auto"`, what each candidate was found to be. */
  providerReason?: string;
  /** The last create or start, step by step. */
  lastStart?: StartTrace;
  /** How its VMM was last launched (boot files, boot disk): what a snapshot of it must keep. */
  launch?: LaunchRecord;
  /** The snapshot this VM was resumed from, while it runs from it (a cold boot clears it). */
  restoredFrom?: string;
  /**
   * Set while a create that only defines the VM (`start: false`) runs: a daemon that died in it
   * finishes the definition after its restart instead of booting a VM nobody asked to boot.
   * Not shown by the API (it is over by the time the create answers).
   */
  defineOnly?: true;
}

/** How long one step of a create or start took; `done` when it found its work already there. */
export interface StepTiming {
  step: string;
  ms: number;
  done?: true;
}

/**
 * The last create or start, step by step (`inspect --json`): record, directories, network,
 * image-disk, launch (the VMM runs), announce, and for agent VMs agent (until the guest's agent
 * answered: the guest's boot) and workload (the workload started).
 */
export interface StartTrace {
  /** When the create or start began. */
  at: string;
  /** The steps' sum, in ms. */
  totalMs: number;
  steps: StepTiming[];
}

/** Event published on every state change (WatchEvents). */
export interface VmEvent {
  type: 'created' | 'state-changed' | 'deleted';
  vmId: string;
  name: string;
  state: VmState;
  previousState?: VmState;
  at: string;
  error?: VmError;
}
