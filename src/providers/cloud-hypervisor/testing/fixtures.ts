/**
 * Fixtures for the Cloud Hypervisor contract tests. The VM's files (kernel, initrd, disk, call log)
 * are the same as for the Firecracker tests; only the run directory differs: the fake Cloud
 * Hypervisor, which has no --id, names its call log after the run directory, as the daemon names
 * run directories after VM ids.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { VmPaths } from '../../../core/ports.js';
import type { VmSpec } from '../../../core/vm.js';
import { fcFixture, type FcFixture } from '../../firecracker/testing/fixtures.js';

export { fakeCalls, fakeRecords, launchRequest, quietLogger } from '../../firecracker/testing/fixtures.js';

export type ChFixture = FcFixture;

/** A fixture whose run directory is named after `vmId`. */
export async function chFixture(vmId: string): Promise<ChFixture> {
  const fx = await fcFixture();
  return { ...fx, paths: await vmPaths(fx, vmId) };
}

/** The paths of another VM in the same fixture. */
export async function vmPaths(fx: ChFixture, vmId: string): Promise<VmPaths> {
  const paths = { stateDir: fx.paths.stateDir, runDir: join(fx.dir, 'vms', vmId), consoleLog: join(fx.paths.stateDir, `${vmId}.console.log`) };
  await mkdir(paths.runDir, { recursive: true });
  return paths;
}

export function chSpec(name: string, binary: string, extra: Partial<VmSpec> = {}): VmSpec {
  return { name, description: '', cores: 2, memoryMib: 256, kernelArgs: '', driveReadOnly: false, provider: 'cloud-hypervisor', hypervisor: { cloudHypervisor: { binary } }, ...extra };
}
