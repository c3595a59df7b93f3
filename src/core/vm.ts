/** The domain model: what a VM is, what it was asked to be, and the states it moves through. */
import type { VmDisk } from './image.js';

export const providerNames = ['qemu', 'firecracker', 'cloud-hypervisor'] as const;
export type ProviderName = (typeof providerNames)[number];
export type ProviderChoice = ProviderName | 'auto';
export type AccelMode = 'auto' | 'kvm' | 'tcg';

/** Per-provider settings from `[hypervisor.<name>]`. */
export interface HypervisorSettings {
  qemu: { binary?: string; accel: AccelMode };
  firecracker: { binary?: string };
  cloudHypervisor: { binary?: string };
}

/**
 * A validated request for a VM. Paths are absolute (resolved against the hac.toml's folder);
 * an unset `kernel` / `initrd` means "the boot kernel that set-up installed".
 */
export interface VmSpec {
  name: string;
  description: string;
  cores: number;
  memoryMib: number;
  kernel?: string;
  initrd?: string;
  kernelArgs: string;
  drive: string;
  driveReadOnly: boolean;
  /** OCI image reference (`ref` in hac.toml), used once images land. */
  image?: string;
  /** Host interface for outbound traffic (`interface` in hac.toml), used once networking lands. */
  hostInterface?: string;
  provider: ProviderChoice;
  hypervisor: HypervisorSettings;
}

export const vmStates = ['creating', 'starting', 'running', 'stopping', 'stopped', 'failed', 'deleting'] as const;
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
