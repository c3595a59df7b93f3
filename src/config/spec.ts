/** Maps a validated hac.toml (file key names) to the domain's VmSpec (camelCase, absolute paths). */
import type { MetadataSpec, VmSpec, WorkloadSpec } from '../core/vm.js';
import { resolveBinary } from './files.js';
import type { HacFile } from './schema.js';
import { providerSettings } from '../providers/catalog.js';

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
    diskSizeMib: hw.disk_size,
    kernelArgs: hw.kernel_args,
    driveReadOnly: hw.drive_readonly,
    provider: hv.provider,
    // Each provider maps its own table (validated by its own schema).
    hypervisor: Object.fromEntries(
      providerSettings.map((p) => [p.specKey, p.toSpec(((hv as Record<string, unknown>)[p.table] ?? {}) as Record<string, unknown>, (value) => resolveBinary(value, fileDir))]),
    ),
  };
  // Optional keys are left out rather than set to undefined, so specs compare and serialise cleanly.
  if (hw.kernel !== undefined) spec.kernel = resolveFile('kernel', hw.kernel);
  if (hw.initrd !== undefined) spec.initrd = resolveFile('initrd', hw.initrd);
  if (hw.drive !== undefined) spec.drive = resolveFile('drive', hw.drive);
  if (hw.ref !== undefined) spec.image = hw.ref;
  if (hac.workload !== undefined) spec.workload = toWorkloadSpec(hac.workload);
  if (hw.interface !== undefined) spec.hostInterface = hw.interface;
  if (hac.metadata !== undefined) spec.metadata = toMetadataSpec(hac.metadata);
  const net = hac.network;
  if (net.mode !== 'none') {
    spec.network = { mode: net.mode, subnet: net.subnet, dns: [...net.dns], ports: [...net.ports] };
    if (net.ip !== undefined) spec.network.ip = net.ip;
    if (net.bridge !== undefined) spec.network.bridge = net.bridge;
    if (net.gateway !== undefined) spec.network.gateway = net.gateway;
    if (net.mac !== undefined) spec.network.mac = net.mac.toLowerCase();
    // Left out at their defaults, so specs stored before these keys existed mean the same.
    if (!net.isolate) spec.network.isolate = false;
    if (net.host_ports.length > 0) spec.network.hostPorts = [...net.host_ports];
  }
  return spec;
}

function toMetadataSpec(m: NonNullable<HacFile['metadata']>): MetadataSpec {
  return {
    values: { ...m.values },
    secrets: { ...m.secrets },
    sshAuthorizedKeys: [...m.ssh_authorized_keys],
    files: m.files.map((f) => ({ path: f.path, mode: f.mode, owner: f.owner, content: f.content })),
  };
}

function toWorkloadSpec(w: NonNullable<HacFile['workload']>): WorkloadSpec {
  const spec: WorkloadSpec = { tty: w.tty };
  if (w.entrypoint !== undefined) spec.entrypoint = [...w.entrypoint];
  if (w.command !== undefined) spec.cmd = [...w.command];
  if (w.env !== undefined) spec.env = [...w.env];
  if (w.workdir !== undefined) spec.workdir = w.workdir;
  if (w.user !== undefined) spec.user = w.user;
  if (w.pids_limit !== undefined) spec.pidsLimit = w.pids_limit;
  if (w.memory_limit !== undefined) spec.memoryLimitMib = w.memory_limit;
  return spec;
}
