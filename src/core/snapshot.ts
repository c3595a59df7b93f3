/** The snapshot model: a VM's memory, device state and disks at one instant, from which new VMs resume. */
import type { VmDisk } from './image.js';
import type { BootPlan, VmmSnapshot } from './ports.js';
import type { ProviderName, VmSpec } from './vm.js';

/** How a VMM was launched: a restore starts its VMM the same way (same devices, same boot files). */
export interface LaunchRecord {
  boot: BootPlan;
  /** The boot disk as attached; absent for a kernel-only VM. */
  rootDisk?: { path: string; readOnly: boolean };
}

export interface Snapshot {
  id: string;
  name: string;
  /** The VM it was taken of; that VM may have been removed since. */
  vmId: string;
  vmName: string;
  createdAt: string;
  provider: ProviderName;
  /** What the provider wrote: memory and device state, and the VMM version that can read them. */
  vmm: VmmSnapshot;
  /** The source VM's spec: a VM restored from the snapshot has the same hardware and workload. */
  spec: VmSpec;
  /** Manifest digest of the image whose block image the disks read (kept from `image prune` while the snapshot exists). */
  imageDigest?: string;
  /** The source's launch, with its boot disk kept inside the snapshot directory. */
  launch: LaunchRecord;
  /** The source's disks as they were at that instant: writable ones copied into the snapshot directory. */
  disks: VmDisk[];
  /** How long the guest was paused for it (0 when it was paused already), in ms. */
  pauseMs: number;
  /** Bytes the snapshot directory takes on disk. */
  sizeBytes: number;
}
