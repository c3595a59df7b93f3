/**
 * Per-VM directories: `<root>/vms/<id>` for what must survive a host reboot (console log, disks
 * later), `<run-dir>/vms/<id>` for runtime files (sockets, pidfiles).
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { VmFiles, VmPaths } from '../core/ports.js';

export class VmDirectories implements VmFiles {
  constructor(
    private readonly rootDir: string,
    private readonly runDir: string,
  ) {}

  paths(vmId: string): VmPaths {
    const stateDir = join(this.rootDir, 'vms', vmId);
    return { stateDir, runDir: join(this.runDir, 'vms', vmId), consoleLog: join(stateDir, 'console.log') };
  }

  async create(vmId: string): Promise<VmPaths> {
    const paths = this.paths(vmId);
    await mkdir(paths.stateDir, { recursive: true, mode: 0o700 });
    await mkdir(paths.runDir, { recursive: true, mode: 0o700 });
    return paths;
  }

  async remove(vmId: string): Promise<void> {
    const paths = this.paths(vmId);
    await rm(paths.stateDir, { recursive: true, force: true });
    await rm(paths.runDir, { recursive: true, force: true });
  }
}
