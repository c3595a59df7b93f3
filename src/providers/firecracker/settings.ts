/** `[hypervisor.firecracker]`: which Firecracker. */
import { binaryOnlySettings, type BinarySettings } from '../settings-schema.js';

export type FirecrackerSettings = BinarySettings;

export const firecrackerSettings = binaryOnlySettings('firecracker', 'firecracker', 'firecracker', 'Firecracker');
