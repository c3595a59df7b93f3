/**
 * The guest boot contract: what every provider's guest is booted with, whatever the VMM. The
 * default kernel (Debian's cloud kernel, as a bzImage `vmlinuz` or the ELF `vmlinux` extracted
 * from it, whichever the VMM loads) and the stage-1 initramfs; and the `hc.*` kernel arguments
 * that stage 1, the guest system image's init and the demo init read:
 *   hc.root=vda hc.rootflags=rw|ro    the root disk (stage 1 mounts it and switches to its /sbin/init)
 *   hc.ip=A.B.C.D/N hc.gw=G hc.dns=D1,D2   the guest's address (this kernel has no ip= autoconfiguration)
 *   hc.metadata=host                  the host serves 169.254.169.254 (through the gateway): the agent does not
 *   hc.agent=vsock:PORT               the agent listens on vsock instead of the virtio-serial port
 *   hc.machine_id=HEX32               the VM's machine id (the workload's /etc/machine-id)
 * A VM's own kernel gets `root=/dev/vda rw|ro` instead of hc.root (it has no stage 1). The user's
 * kernel_args come last, so they can override. A provider adds only its own VMM-specific
 * arguments (console device, reboot behaviour, timer hints) before these.
 */
import { existsSync } from 'node:fs';
import { ProviderUnavailableError } from '../core/errors.js';
import type { BootInput, BootPlan, GuestBoot } from '../core/ports.js';
import { AGENT_VSOCK_PORT } from '../agent/protocol/schema.js';
import { bootAssetPaths } from './boot-assets.js';

/** A default boot file, which set-up installs. */
function installed(path: string): string {
  if (!existsSync(path)) throw new ProviderUnavailableError(`the default guest kernel is not installed (${path} is missing); run the set-up step (scripts/setup.sh) or set [hardware] kernel in hac.toml`);
  return path;
}

export class GuestBootContract implements GuestBoot {
  private readonly assets: ReturnType<typeof bootAssetPaths>;

  constructor(bootDir: string) {
    this.assets = bootAssetPaths(bootDir);
  }

  plan(input: BootInput): BootPlan {
    const { spec, rootDisk, network, agentChannel } = input;
    const kernel = spec.kernel ?? installed(this.defaultKernel(input));
    const initrd = spec.initrd ?? (spec.kernel === undefined ? installed(this.assets.initrd) : undefined);
    const args: string[] = [];
    if (rootDisk) {
      const mode = rootDisk.readOnly ? 'ro' : 'rw';
      // Stage 1 is ours only with the default kernel and initramfs.
      args.push(...(spec.kernel === undefined && spec.initrd === undefined ? ['hc.root=vda', `hc.rootflags=${mode}`] : ['root=/dev/vda', mode]));
    }
    if (network) {
      args.push(`hc.ip=${network.ip}/${network.prefixLength}`);
      if (network.gateway) args.push(`hc.gw=${network.gateway}`);
      if (network.dns.length > 0) args.push(`hc.dns=${network.dns.join(',')}`);
      if (network.metadataOnHost) args.push('hc.metadata=host');
    }
    if (agentChannel === 'vsock') args.push(`hc.agent=vsock:${AGENT_VSOCK_PORT}`);
    if (input.machineId) args.push(`hc.machine_id=${input.machineId}`);
    const own = spec.kernelArgs.trim();
    if (own) args.push(own);
    return { kernel, ...(initrd ? { initrd } : {}), args };
  }

  private defaultKernel(input: BootInput): string {
    if (input.kernelFormats.includes('bzimage')) return this.assets.kernel;
    if (input.kernelFormats.includes('elf')) return this.assets.kernelElf;
    throw new ProviderUnavailableError(`the provider loads no kernel format Hypercore installs (it loads: ${input.kernelFormats.join(', ') || 'none'})`);
  }
}
