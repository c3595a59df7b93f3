/**
 * The API requests that configure a Firecracker VM before `InstanceStart`, from the launch request.
 * Pure, so the exact sequence is unit-tested and held to the official API document without a VMM.
 */
import type { VmDisk } from '../../core/image.js';
import type { BootPlan, NetworkAttachment } from '../../core/ports.js';
import type { VmSpec } from '../../core/vm.js';
import type { ApiRequest } from './api.js';

export interface FirecrackerPlan {
  spec: VmSpec;
  boot: BootPlan;
  rootDisk?: { path: string; readOnly: boolean };
  disks: readonly VmDisk[];
  network?: NetworkAttachment;
  /** The vsock device's host socket, when the guest runs an agent. */
  vsockSocket?: string;
}

/** The vsock CID of every guest: each Firecracker has its own vsock device, so CIDs never meet. */
export const GUEST_CID = 3;

/**
 * Firecracker's own kernel arguments, instead of its defaults (which carry `nomodule`, fatal to the
 * module-loading initramfs, and `8250.nr_uarts=0`, which removes the console):
 *  - reboot=k: a guest reboot goes through the keyboard controller and ends the Firecracker process;
 *  - panic=1: a panicking guest reboots, so its VMM ends instead of spinning;
 *  - the i8042 options skip probing the aux port and mux Firecracker does not emulate;
 *  - hc.poweroff=reboot: on x86 Firecracker does not end when its guest powers off, only when it
 *    reboots, so Hypercore's inits reboot to power off.
 */
export const FIRECRACKER_KERNEL_ARGS: readonly string[] = ['console=ttyS0', 'reboot=k', 'panic=1', 'i8042.noaux', 'i8042.nomux', 'i8042.dumbkbd', 'hc.poweroff=reboot'];

/** Drive ids go into a URL path; VM disk names are plain words, anything else gets a positional id. */
function driveId(disk: VmDisk, index: number): string {
  return /^[A-Za-z0-9_]{1,32}$/.test(disk.name) && disk.name !== 'root' ? disk.name : `disk${index + 1}`;
}

/** The guest's name of the n-th virtio disk: vda, vdb, ..., vdz, vdaa, ... */
export function virtioDiskName(index: number): string {
  let name = '';
  let n = index;
  do {
    name = String.fromCharCode(97 + (n % 26)) + name;
    n = Math.floor(n / 26) - 1;
  } while (n >= 0);
  return `vd${name}`;
}

/**
 * Firecracker's drives have no serial the guest can read (it reports an id derived from the file's
 * inode), so the guest learns which disk is which from `hc.disks=<name>:<vdX>,...`, in the order
 * the drives are attached.
 */
export function diskMapArgument(plan: FirecrackerPlan): string | undefined {
  if (plan.disks.length === 0) return undefined;
  const first = plan.rootDisk ? 1 : 0;
  // Only names the guest accepts, and never a space (it would split the kernel command line).
  const pairs = plan.disks.flatMap((d, i) => (/^[A-Za-z0-9_.-]{1,32}$/.test(d.name) ? [`${d.name}:${virtioDiskName(first + i)}`] : []));
  return pairs.length > 0 ? `hc.disks=${pairs.join(',')}` : undefined;
}

export function kernelCommandLine(plan: FirecrackerPlan): string {
  const map = diskMapArgument(plan);
  return [...FIRECRACKER_KERNEL_ARGS, ...(map ? [map] : []), ...plan.boot.args].join(' ');
}

/** Every request before `InstanceStart`, in order. */
export function configurationRequests(plan: FirecrackerPlan): ApiRequest[] {
  const { spec, boot } = plan;
  const requests: ApiRequest[] = [
    { method: 'PUT', path: '/machine-config', body: { vcpu_count: spec.cores, mem_size_mib: spec.memoryMib, smt: false } },
    { method: 'PUT', path: '/boot-source', body: { kernel_image_path: boot.kernel, ...(boot.initrd ? { initrd_path: boot.initrd } : {}), boot_args: kernelCommandLine(plan) } },
  ];
  // No drive is the "root device": that would make Firecracker append its own root= argument,
  // while the guest boot contract already says where the root is.
  if (plan.rootDisk) {
    requests.push({ method: 'PUT', path: '/drives/root', body: { drive_id: 'root', path_on_host: plan.rootDisk.path, is_root_device: false, is_read_only: plan.rootDisk.readOnly } });
  }
  plan.disks.forEach((disk, i) => {
    const id = driveId(disk, i);
    requests.push({ method: 'PUT', path: `/drives/${id}`, body: { drive_id: id, path_on_host: disk.path, is_root_device: false, is_read_only: disk.readOnly } });
  });
  if (plan.network) {
    requests.push({ method: 'PUT', path: '/network-interfaces/eth0', body: { iface_id: 'eth0', host_dev_name: plan.network.tap, guest_mac: plan.network.mac } });
  }
  if (plan.vsockSocket) requests.push({ method: 'PUT', path: '/vsock', body: { guest_cid: GUEST_CID, uds_path: plan.vsockSocket } });
  // Entropy: without it node and other programs block in getrandom() for seconds at boot.
  requests.push({ method: 'PUT', path: '/entropy', body: {} });
  return requests;
}

export const INSTANCE_START: ApiRequest = { method: 'PUT', path: '/actions', body: { action_type: 'InstanceStart' } };
