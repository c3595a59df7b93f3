/** What the steps of a create (or start) plan share: the VM being built, and the services they use. */
import type { Image, PullProgress } from '../image.js';
import type { GuestBoot, GuestSystem, ImageProvisioner, NetworkAttachment, Provider, SnapshotFiles, VmFiles, VmmExit, VmNetworks } from '../ports.js';
import type { VmRecords } from '../vm-records.js';
import type { VmRuntime } from '../vm-runtime.js';
import type { Vm } from '../vm.js';
import type { Snapshot } from '../snapshot.js';

export interface PlanServices {
  records: VmRecords;
  runtime: VmRuntime;
  files: VmFiles;
  networks?: VmNetworks;
  images?: ImageProvisioner;
  guest?: GuestSystem;
  /** Needed to restore snapshots. */
  snapshotFiles?: SnapshotFiles;
  /** Kernel, initrd and kernel arguments of the guest boot contract. */
  boot: GuestBoot;
  /** Where a watched VMM's unexpected exit is reported. */
  onVmmExit(vmId: string, exit: VmmExit): void;
}

export interface PlanContext {
  /** The VM's record; steps update it and save it. */
  vm: Vm;
  provider: Provider;
  /** Whether the VM boots the guest system image and runs its image under the agent. */
  agent: boolean;
  services: PlanServices;
  onProgress?: (p: PullProgress) => void;
  /** Set by the image-disk step: the stored image of `vm.spec.image`. */
  image?: Image;
  /** Set by the network step. */
  attachment?: NetworkAttachment;
  /**
   * A restore: the snapshot the VM resumes from, its directory, and what to do once the VMM runs
   * but before the guest resumes (open the agent's channel).
   */
  restore?: { snapshot: Snapshot; dir: string; beforeResume?: () => Promise<void> };
  /** Set by the snapshot-disks step: the boot disk the restored VMM attaches. */
  restoredRoot?: { path: string; readOnly: boolean };
}
