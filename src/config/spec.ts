/** Maps a validated hac.toml (file key names) to the domain's VmSpec (camelCase, absolute paths). */
import type { VmSpec } from '../core/vm.js';
import { resolveBinary } from './files.js';
import type { HacFile } from './schema.js';

/**
 * Builds the VmSpec. `resolveFile` turns a path key's value into an absolute path (it knows
 * whether the value came from the file or a flag); `fileDir` is the base for program paths.
 */
export function toVmSpec(hac: HacFile, resolveFile: (key: 'kernel' | 'initrd' | 'drive', value: string) => string, fileDir: string): VmSpec {
  const hw = hac.hardware;
  const hv = hac.hypervisor;
  const spec: VmSpec = {
    name: hac.spacecore.name,
    description: hac.spacecore.description,
    cores: hw.cores,
    memoryMib: hw.memory,
    kernelArgs: hw.kernel_args,
    drive: resolveFile('drive', hw.drive),
    driveReadOnly: hw.drive_readonly,
    provider: hv.provider,
    hypervisor: {
      qemu: withBinary({ accel: hv.qemu.accel }, resolveBinary(hv.qemu.binary, fileDir)),
      firecracker: withBinary({}, resolveBinary(hv.firecracker.binary, fileDir)),
      cloudHypervisor: withBinary({}, resolveBinary(hv.cloud_hypervisor.binary, fileDir)),
    },
  };
  // Optional keys are left out rather than set to undefined, so specs compare and serialise cleanly.
  if (hw.kernel !== undefined) spec.kernel = resolveFile('kernel', hw.kernel);
  if (hw.initrd !== undefined) spec.initrd = resolveFile('initrd', hw.initrd);
  if (hw.ref !== undefined) spec.image = hw.ref;
  if (hw.interface !== undefined) spec.hostInterface = hw.interface;
  return spec;
}

function withBinary<T extends object>(settings: T, binary: string | undefined): T & { binary?: string } {
  return binary === undefined ? settings : { ...settings, binary };
}
