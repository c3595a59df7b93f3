/**
 * Cloud Hypervisor versions: what `cloud-hypervisor --version` and `GET vmm.ping` say, and what
 * Hypercore needs. 51.0 is the first release whose disks take an explicit `image_type` (so a raw
 * disk whose guest wrote a qcow2 header into it is never read as qcow2) and `backing_files`
 * (qcow2 backing files are followed only when asked), and the first that reads a qcow2 overlay
 * over a raw backing file, which is what Hypercore's per-VM overlays are.
 */
export interface CloudHypervisorVersion {
  major: number;
  minor: number;
  /** As the VMM printed it, e.g. `v51.0`, `v51.1.0` or `v52.0-14-g1a2b3c4-dirty`. */
  text: string;
}

export const MINIMUM_VERSION = { major: 51, minor: 0 } as const;

/**
 * Parses the first line of `--version` (`cloud-hypervisor v51.0`, a `git describe` with a suffix
 * when built from a tree) or vmm.ping's `version`/`build_version` (`51.0.0`, `v51.0`); undefined
 * when it is neither.
 */
export function parseCloudHypervisorVersion(text: string): CloudHypervisorVersion | undefined {
  const m = /^(?:cloud-hypervisor\s+)?v?(\d{1,4})\.(\d{1,4})((?:\.\d{1,4})?(?:[-+][\w.+-]{0,60})?)\s*$/.exec(text.split('\n')[0]!.trim());
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), text: `v${m[1]}.${m[2]}${m[3] ?? ''}` };
}

export function atLeastMinimum(v: CloudHypervisorVersion): boolean {
  return v.major > MINIMUM_VERSION.major || (v.major === MINIMUM_VERSION.major && v.minor >= MINIMUM_VERSION.minor);
}
