/** Hypercore's version, and what the daemon reports about itself and its hosts' programs. */
import type { ProviderReport } from './ports.js';

/** The release: the CLI's and the daemon's version (package.json says the same; a unit test checks). */
export const HYPERCORE_VERSION = '0.1.0';

/** The guest kernel VMs boot by default, as set-up recorded it in `<boot-dir>/manifest.json`. */
export interface GuestKernelReport {
  bootDir: string;
  /** `uname -r` of the kernel, e.g. 6.1.0-57-cloud-amd64; unset when there is no manifest. */
  version?: string;
  /** The Debian package it came from, and that package's version. */
  package?: string;
  packageVersion?: string;
  /** Why the version is unknown. */
  detail?: string;
}

/** `GET /v1/version`, gRPC `Version`: the daemon, each hypervisor it knows, and the guest kernel. */
export interface VersionReport {
  version: string;
  nodeVersion: string;
  /** Each VMM (its `describe()`): version, or why it is unusable. */
  providers: ProviderReport[];
  guestKernel: GuestKernelReport;
}
