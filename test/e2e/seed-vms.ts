/**
 * Defined VMs without booting them, for measuring the control plane with many VMs: records written
 * straight into a daemon's state database (before the daemon starts, or beside it: SQLite in WAL
 * mode), each a stopped drive VM with the fields a booted VM has (a last start, an error).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Vm } from '../../src/core/vm.js';
import { SqliteVmStore } from '../../src/store/sqlite-vm-store.js';

/** Inserts `count` stopped VMs named `<prefix>-<n>` (n from `first`, default 0) into `<root>/state.db`; returns their ids. */
export function seedStoppedVms(root: string, count: number, options: { prefix?: string; first?: number; drive: string }): string[] {
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const store = new SqliteVmStore(join(root, 'state.db'));
  const prefix = options.prefix ?? 'seeded';
  const ids: string[] = [];
  try {
    for (let i = options.first ?? 0; i < (options.first ?? 0) + count; i++) {
      const id = `5eed${String(i).padStart(12, '0')}`;
      const at = new Date(Date.UTC(2026, 0, 1, 0, 0, i % 60)).toISOString();
      const vm: Vm = {
        id,
        name: `${prefix}-${i}`,
        state: 'stopped',
        provider: 'qemu',
        createdAt: at,
        updatedAt: at,
        startedAt: at,
        spec: {
          name: `${prefix}-${i}`,
          description: 'a seeded VM',
          cores: 1,
          memoryMib: 256,
          kernelArgs: '',
          drive: options.drive,
          driveReadOnly: false,
          provider: 'qemu',
          hypervisor: { qemu: { accel: 'tcg' }, firecracker: {}, cloudHypervisor: {} },
        },
        disks: [],
        error: { code: 'HC_VMM_EXITED', message: 'the guest powered off' },
        providerReason: 'provider = "qemu" was asked for',
        lastStart: {
          at,
          totalMs: 231.4,
          steps: [
            { step: 'record', ms: 0.4 },
            { step: 'directories', ms: 0.3 },
            { step: 'network', ms: 0.1 },
            { step: 'image-disk', ms: 0.1 },
            { step: 'launch', ms: 230 },
            { step: 'announce', ms: 0.5 },
          ],
        },
      };
      store.insert(vm);
      ids.push(id);
    }
  } finally {
    store.close();
  }
  return ids;
}
