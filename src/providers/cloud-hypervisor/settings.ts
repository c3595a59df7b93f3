/** `[hypervisor.cloud_hypervisor]`: which Cloud Hypervisor. */
import { binaryOnly, binaryToSpec } from '../settings-schema.js';
import { settingsOf, type ProviderSettings } from '../settings.js';

export interface CloudHypervisorSettings {
  binary?: string;
}

export const cloudHypervisorSettings: ProviderSettings<CloudHypervisorSettings> = {
  provider: 'cloud-hypervisor',
  table: 'cloud_hypervisor',
  specKey: 'cloudHypervisor',
  description: 'Cloud Hypervisor settings',
  file: binaryOnly('Cloud Hypervisor'),
  toSpec: binaryToSpec,
  read: (spec) => {
    const s = settingsOf(spec, 'cloudHypervisor');
    return typeof s['binary'] === 'string' ? { binary: s['binary'] } : {};
  },
};
