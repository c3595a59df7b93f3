/** `[hypervisor.qemu]`: which QEMU, and KVM or TCG. */
import * as z from 'zod';
import type { AccelMode } from '../../core/vm.js';
import { binarySetting, oneOf, tableError } from '../settings-schema.js';
import { settingsOf, type ProviderSettings } from '../settings.js';

export const accelModes = ['auto', 'kvm', 'tcg'] as const;

export interface QemuSettings {
  binary?: string;
  accel: AccelMode;
}

export const qemuSettings: ProviderSettings<QemuSettings> = {
  provider: 'qemu',
  table: 'qemu',
  specKey: 'qemu',
  description: 'QEMU (microvm machine) settings',
  file: z.strictObject(
    {
      binary: binarySetting('QEMU'),
      accel: z
        .enum(accelModes, { error: oneOf(accelModes) })
        .default('auto')
        .describe('acceleration: KVM, TCG emulation, or "auto" (KVM when /dev/kvm is usable)'),
    },
    tableError,
  ),
  toSpec: (table, resolveBinary) => {
    const binary = resolveBinary(table['binary'] as string | undefined);
    return { accel: table['accel'], ...(binary === undefined ? {} : { binary }) };
  },
  read: (spec) => {
    const s = settingsOf(spec, 'qemu');
    return { accel: (s['accel'] as AccelMode | undefined) ?? 'auto', ...(typeof s['binary'] === 'string' ? { binary: s['binary'] } : {}) };
  },
};
