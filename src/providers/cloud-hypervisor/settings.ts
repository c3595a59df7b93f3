/** `[hypervisor.cloud_hypervisor]`: which Cloud Hypervisor. */
import { binaryOnlySettings, type BinarySettings } from '../settings-schema.js';

export type CloudHypervisorSettings = BinarySettings;

export const cloudHypervisorSettings = binaryOnlySettings('cloud-hypervisor', 'cloud_hypervisor', 'cloudHypervisor', 'Cloud Hypervisor');
