/**
 * The VmConfig of `PUT vm.create`, from the launch request. Pure, so the exact body is unit-tested
 * and held to the official API document without a VMM.
 *
 * Devices are virtio-pci (Cloud Hypervisor's only transport on x86); the stage-1 initramfs loads
 * virtio_pci. The serial port (ttyS0) is the console and goes to the VMM's stdout, which the
 * provider appends to the console log; the virtio console is off.
 */
import type { VmDisk } from '../../core/image.js';
import type { VmmLaunchPlan } from '../shared/api-vmm.js';

export type CloudHypervisorPlan = VmmLaunchPlan;

/** The vsock CID of every guest: each VMM has its own vsock device, so CIDs never meet. */
export const GUEST_CID = 3;

/**
 * Cloud Hypervisor's own kernel arguments. Nothing about reboots: the guest powers off through
 * ACPI, which ends the VMM; a guest reboot restarts the VM in place.
 */
export const CLOUD_HYPERVISOR_KERNEL_ARGS: readonly string[] = ['console=ttyS0'];

const MiB = 1024 * 1024;

/** A disk's id in Cloud Hypervisor (unique per VM): a plain word keeps its name, anything else is positional. */
function diskId(disk: VmDisk, index: number): string {
  return /^[A-Za-z0-9_]{1,32}$/.test(disk.name) && disk.name !== 'root' ? disk.name : `disk${index + 1}`;
}

/**
 * The virtio-blk serial the guest finds a disk by (its name). A virtio-blk serial holds at most
 * 20 bytes; a name that does not fit, or has other characters, gets none.
 */
function diskSerial(disk: VmDisk): { serial?: string } {
  return /^[A-Za-z0-9_.-]{1,20}$/.test(disk.name) ? { serial: disk.name } : {};
}

export function kernelCommandLine(plan: CloudHypervisorPlan): string {
  return [...CLOUD_HYPERVISOR_KERNEL_ARGS, ...plan.boot.args].join(' ');
}

/**
 * Every disk's format is stated (`image_type`), never detected: a disk the guest writes could
 * otherwise be given a qcow2 header naming any host file as its backing file. Backing files are
 * followed only for the overlays Hypercore made (`backing` set), after the provider has checked
 * that the overlay names exactly that file.
 */
function diskConfigs(plan: CloudHypervisorPlan): Record<string, unknown>[] {
  const disks: Record<string, unknown>[] = [];
  if (plan.rootDisk) disks.push({ id: 'root', path: plan.rootDisk.path, readonly: plan.rootDisk.readOnly, image_type: 'Raw' });
  plan.disks.forEach((disk, i) => {
    const qcow2 = disk.format === 'qcow2';
    disks.push({
      id: diskId(disk, i),
      path: disk.path,
      readonly: disk.readOnly,
      ...diskSerial(disk),
      image_type: qcow2 ? 'Qcow2' : 'Raw',
      ...(qcow2 && disk.backing !== undefined ? { backing_files: true } : {}),
    });
  });
  return disks;
}

/** The body of `PUT vm.create`. */
export function vmConfig(plan: CloudHypervisorPlan): Record<string, unknown> {
  const { spec, boot } = plan;
  const disks = diskConfigs(plan);
  return {
    cpus: { boot_vcpus: spec.cores, max_vcpus: spec.cores },
    // Cloud Hypervisor counts memory in bytes.
    memory: { size: spec.memoryMib * MiB },
    payload: { kernel: boot.kernel, ...(boot.initrd ? { initramfs: boot.initrd } : {}), cmdline: kernelCommandLine(plan) },
    ...(disks.length > 0 ? { disks } : {}),
    ...(plan.network ? { net: [{ id: 'net0', tap: plan.network.tap, mac: plan.network.mac }] } : {}),
    // Entropy: without it node and other programs block in getrandom() for seconds at boot.
    rng: { src: '/dev/urandom' },
    serial: { mode: 'Tty' },
    console: { mode: 'Off' },
    ...(plan.vsockSocket ? { vsock: { cid: GUEST_CID, socket: plan.vsockSocket } } : {}),
  };
}
