/**
 * The providers' settings, for the hac.toml schema and the spec mapping. A new provider adds its
 * settings here (one line) and its provider to the daemon's wiring (one line). Only settings
 * modules are imported, so the CLI does not load any VMM driver to validate a file.
 */
import { cloudHypervisorSettings } from './cloud-hypervisor/settings.js';
import { firecrackerSettings } from './firecracker/settings.js';
import { qemuSettings } from './qemu/settings.js';
import type { ProviderSettings } from './settings.js';

export const providerSettings: readonly ProviderSettings<unknown>[] = [qemuSettings, firecrackerSettings, cloudHypervisorSettings];
