/**
 * Firecracker versions: what `firecracker --version` and `GET /version` say, and what Hypercore
 * needs. 1.8 is the first release that describes its devices in ACPI, the only way the Debian cloud
 * kernel finds virtio-mmio devices; `PUT /serial` (console to a file) came with 1.14 (the fake
 * Firecracker of the contract tests refuses it before that).
 */
export interface FirecrackerVersion {
  major: number;
  minor: number;
  patch: number;
  /** As the VMM printed it, e.g. `1.10.1` or `1.17.0-dev`. */
  text: string;
}

export const MINIMUM_VERSION = { major: 1, minor: 8 } as const;
export const SERIAL_API_VERSION = { major: 1, minor: 14 } as const;

/** Parses `Firecracker v1.10.1` (first line of --version) or `1.10.1` (GET /version); undefined when it is neither. */
export function parseFirecrackerVersion(text: string): FirecrackerVersion | undefined {
  const m = /^(?:Firecracker\s+)?v?(\d{1,4})\.(\d{1,4})\.(\d{1,4})([-+][\w.-]{0,40})?\s*$/.exec(text.split('\n')[0]!.trim());
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), text: `${m[1]}.${m[2]}.${m[3]}${m[4] ?? ''}` };
}

/** True when `v` is at least `min` (major.minor). */
export function atLeast(v: FirecrackerVersion, min: { major: number; minor: number }): boolean {
  return v.major > min.major || (v.major === min.major && v.minor >= min.minor);
}
