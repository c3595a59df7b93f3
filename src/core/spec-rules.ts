/**
 * The limits a VmSpec must respect, shared by the hac.toml parser and the API's input validation
 * so a spec is judged by the same rules however it arrives.
 */
export const specRules = {
  namePattern: /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/,
  nameHint: '1-63 characters: letters, digits, "_", "." or "-", starting with a letter or digit',
  minMemoryMib: 64,
  maxMemoryMib: 1024 * 1024,
  minCores: 1,
  defaultCores: 1,
  defaultMemoryMib: 256,
  /** `hardware.disk_size` (MiB): the most a VM can write onto its image disk. */
  minDiskSizeMib: 64,
  maxDiskSizeMib: 16 * 1024 * 1024,
  /** Room for package installs on a distro image; the disk is sparse, so only what is written is used. */
  defaultDiskSizeMib: 4096,
  /** Linux interface names are at most 15 bytes. */
  interfaceNamePattern: /^[^\s/]{1,15}$/,
} as const;
