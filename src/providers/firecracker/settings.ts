/** `[hypervisor.firecracker]`: which Firecracker. */
import { binaryOnly, binaryToSpec } from '../settings-schema.js';
import { settingsOf, type ProviderSettings } from '../settings.js';

export interface FirecrackerSettings {
  binary?: string;
}

export const firecrackerSettings: ProviderSettings<FirecrackerSettings> = {
  provider: 'firecracker',
  table: 'firecracker',
  specKey: 'firecracker',
  description: 'Firecracker settings',
  file: binaryOnly('Firecracker'),
  toSpec: binaryToSpec,
  read: (spec) => {
    const s = settingsOf(spec, 'firecracker');
    return typeof s['binary'] === 'string' ? { binary: s['binary'] } : {};
  },
};
