/**
 * Per-VM directories: `<root>/vms/<id>` for what must survive a host reboot (console log, disks
 * later), `<run-dir>/vms/<id>` for runtime files (sockets, pidfiles).
 */
import { existsSync } from 'node:fs';
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
    // A VM defined without booting has none: a stat answers at once, where rm walks the thread pool.
    for (const dir of [paths.stateDir, paths.runDir]) if (existsSync(dir)) await rm(dir, { recursive: true, force: true });
  }
}
