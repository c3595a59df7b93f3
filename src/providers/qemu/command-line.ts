/**
 * Builds the qemu-system-x86_64 argument list for a `-M microvm` guest. Pure: every input comes
 * in as data, so the exact command line is unit-tested without starting QEMU.
 */
import type { VmSpec } from '../../core/vm.js';
import type { VmDisk } from '../../core/image.js';
import type { BootPlan, NetworkAttachment } from '../../core/ports.js';
import { AGENT_PORT_NAME } from '../../agent/protocol/schema.js';

export interface QemuLaunchPlan {
  vmId: string;
  spec: VmSpec;
  /** Kernel, initrd and the guest boot contract's arguments. */
  boot: BootPlan;
  /** The boot disk; absent for a kernel-only VM. */
  rootDisk?: { path: string; readOnly: boolean };
  /** Disks after the root drive; the guest sees them as vdb, vdc, ... in this order. */
  disks?: readonly VmDisk[];
  /** Pod VMs: empty root disk slots, filled later by swapping a disk in (see slotArguments). */
  slots?: number;
  /** Unix socket for the agent's virtio-serial port; none when the guest runs no agent. */
  agentSocket?: string;
  /** A virtio-net NIC on this TAP; the guest learns its address from the kernel command line. */
  network?: NetworkAttachment;
  accel: 'kvm' | 'tcg';
  /** Host TSC frequency in kHz; needed by the guest kernel on microvm under TCG. */
  tscKhz?: number;
  consoleLog: string;
  /**
   * Unix socket QEMU listens on for the serial port (ttyS0): one client at a time can read and type.
   * Its `logfile` keeps writing every byte of output to `consoleLog`, client or not.
   */
  serialSocket: string;
  /**
   * Guest RAM in a file: `share: true` while a VM runs (so a snapshot's migration stream can leave
   * RAM out, x-ignore-shared); `share: false` to resume from a snapshot's memory file as a private
   * copy-on-write mapping that several restored VMs share in the page cache.
   */
  memory?: { path: string; share: boolean };
  /** Start waiting for an incoming migration (`migrate-incoming`) instead of booting. */
  incoming?: boolean;
  qmpSocket: string;
  controlSocket: string;
  pidFile: string;
}

/** Translation cache for TCG in MiB: 64 halves QEMU's RSS against the 1 GiB default at the same speed (probe). */
export const TCG_TB_SIZE_MIB = 64;

/** QEMU's own kernel arguments, then the guest boot contract's (which end with the user's). */
export function kernelCommandLine(plan: QemuLaunchPlan): string {
  // ttyS0 is the console; reboot=t: a guest reboot triple-faults, which -no-reboot turns into an exit.
  const args = ['console=ttyS0', 'reboot=t', 'panic=-1'];
  if (plan.accel === 'tcg' && plan.tscKhz) {
    // microvm has no HPET/PM timer: under TCG the kernel's TSC calibration can hang without these.
    args.push(`tsc_early_khz=${plan.tscKhz}`, 'tsc=reliable');
  }
  return [...args, ...plan.boot.args].join(' ');
}

export function qemuArguments(plan: QemuLaunchPlan): string[] {
  const { spec, rootDisk } = plan;
  const drive = rootDisk ? [`id=root`, `file=${escapeOption(rootDisk.path)}`, 'format=raw', 'if=none', ...(rootDisk.readOnly ? ['readonly=on'] : [])] : undefined;
  const args = [
    // The VM id in -name lets the daemon recognise its own QEMU in /proc after a restart.
    '-name', `${spec.name},process=hypercore-${plan.vmId}`,
    '-M', plan.memory ? 'microvm,memory-backend=mem' : 'microvm',
    ...(plan.memory ? ['-object', `memory-backend-file,id=mem,size=${spec.memoryMib}M,mem-path=${escapeOption(plan.memory.path)},share=${plan.memory.share ? 'on' : 'off'}`] : []),
    ...(plan.accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', `tcg,tb-size=${TCG_TB_SIZE_MIB}`]),
    '-m', String(spec.memoryMib),
    '-smp', String(spec.cores),
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    // logappend=on opens the log O_APPEND, so the daemon's copy-truncate rotation keeps working.
    '-chardev', `socket,id=console,path=${escapeOption(plan.serialSocket)},server=on,wait=off,logfile=${escapeOption(plan.consoleLog)},logappend=on`,
    '-serial', 'chardev:console',
    '-kernel', plan.boot.kernel,
    ...(plan.boot.initrd ? ['-initrd', plan.boot.initrd] : []),
    '-append', kernelCommandLine(plan),
    ...(drive ? ['-drive', drive.join(','), '-device', 'virtio-blk-device,drive=root'] : []),
    ...(plan.disks ?? []).flatMap((disk, i) => {
      const id = `disk${i + 1}`;
      const opts = [`id=${id}`, `file=${escapeOption(disk.path)}`, `format=${disk.format}`, 'if=none', ...(disk.readOnly ? ['readonly=on'] : [])];
      return ['-drive', opts.join(','), '-device', `virtio-blk-device,drive=${id},serial=${escapeOption(disk.name)}`];
    }),
    ...slotArguments(plan.slots ?? 0),
    ...(plan.agentSocket
      ? [
          // The agent channel: a virtio-serial port whose host end is a unix socket QEMU listens on.
          '-device', 'virtio-serial-device',
          '-chardev', `socket,id=agent,path=${escapeOption(plan.agentSocket)},server=on,wait=off`,
          '-device', `virtserialport,chardev=agent,name=${AGENT_PORT_NAME}`,
        ]
      : []),
    ...(plan.network
      ? [
          '-netdev', `tap,id=net0,ifname=${plan.network.tap},script=no,downscript=no`,
          '-device', `virtio-net-device,netdev=net0,mac=${plan.network.mac}`,
        ]
      : []),
    // Entropy: without it node and other programs block in getrandom() for seconds at boot.
    '-object', 'rng-random,id=rng0,filename=/dev/urandom',
    '-device', 'virtio-rng-device,rng=rng0',
    // Two QMP sockets: QEMU serves one client per socket, and the watcher holds the first for the VM's life.
    '-qmp', `unix:${escapeOption(plan.qmpSocket)},server=on,wait=off`,
    '-qmp', `unix:${escapeOption(plan.controlSocket)},server=on,wait=off`,
    '-pidfile', plan.pidFile,
    ...(plan.incoming ? ['-incoming', 'defer'] : []),
    '-daemonize',
  ];
  return args;
}

/** The block node of root disk slot `slot`, and the empty node it points at while no disk is in it. */
export function slotNode(slot: number): { node: string; empty: string; disk: string } {
  return { node: `hc-slot${slot}`, empty: `hc-slot${slot}-empty`, disk: `hc-slot${slot}-disk` };
}

/**
 * Root disk slots of a pod VM. microvm has no hotplug, so each slot is a virtio-blk device made at
 * boot over a raw node whose child is an empty (zero-size) null node; a container's disk is later
 * put in with QMP blockdev-add + blockdev-reopen (the raw node's child swapped) + block_resize,
 * which the guest sees as a capacity change of that device. The serial names the slot.
 */
export function slotArguments(slots: number): string[] {
  const args: string[] = [];
  for (let slot = 1; slot <= slots; slot++) {
    const { node, empty } = slotNode(slot);
    args.push('-blockdev', `driver=null-co,node-name=${empty},size=0,read-zeroes=on`, '-blockdev', `driver=raw,node-name=${node},file=${empty}`, '-device', `virtio-blk-device,drive=${node},serial=${node}`);
  }
  return args;
}

/** QEMU option values separate sub-options with commas; a literal comma is written twice. */
export function escapeOption(value: string): string {
  return value.replaceAll(',', ',,');
}
