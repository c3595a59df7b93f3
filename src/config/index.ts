/** hac.toml ("hardware as code"): parse, validate and map a VM's configuration file to a VmSpec. */
export { loadHacFile, type LoadHacOptions } from './load.js';
export { parseHac, specFromImageReference, type ImageReferenceOptions, type ParseHacOptions } from './parse.js';
export { hacJsonSchema } from './json-schema.js';
export { overrideTargets, type HacOverrides } from './overrides.js';
