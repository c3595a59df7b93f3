/**
 * The longest hac.toml text the daemon parses for a caller (`POST /v1/vms/hac`); a hac.toml is a
 * few hundred bytes. The CLI reads a longer file itself. Its own module: the CLI imports it without
 * loading the schema.
 */
export const MAX_HAC_TEXT_CHARS = 64 * 1024;
