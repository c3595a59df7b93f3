/**
 * What the providers of VMMs that Hypercore launches detached and drives over an API socket
 * (Firecracker, Cloud Hypervisor) do alike: read the binary's version, report to doctor whether
 * KVM can be used, wait for the API socket to answer, explain a failed launch from the VMM's own
 * output, and end a VMM found by its pidfile. Each provider keeps only its VMM's particulars.
 */
import { constants } from 'node:fs';
import { access, lstat, open, stat } from 'node:fs/promises';
import { ProviderFailedError, ProviderUnavailableError, asHypercoreError } from '../../core/errors.js';
import type { BootPlan, Logger, NetworkAttachment, ProviderReport } from '../../core/ports.js';
import type { VmDisk } from '../../core/image.js';
import type { ProviderName, VmSpec } from '../../core/vm.js';
import { runCommand, tailLines } from '../../system/command.js';
import { isAlive, killAndWait, readPidFile } from '../../system/process.js';

/** What a VMM's configuration is made from: the launch request, with the provider's own socket for vsock. */
export interface VmmLaunchPlan {
  spec: VmSpec;
  boot: BootPlan;
  rootDisk?: { path: string; readOnly: boolean };
  disks: readonly VmDisk[];
  network?: NetworkAttachment;
  /** The vsock device's host socket, when the guest runs an agent. */
  vsockSocket?: string;
}

export interface ApiVmmProviderOptions {
  logger: Logger;
  /** /dev/kvm (tests). */
  kvmDevice?: string;
}

export interface VersionRules<V> {
  /** The VMM's name in messages, e.g. "Cloud Hypervisor". */
  vmm: string;
  parse(text: string): V | undefined;
  /** Throws ProviderUnavailableError when Hypercore cannot use this version. */
  check(version: V, binary: string): void;
}

/** The binary's version from `<binary> --version`; throws ProviderUnavailableError naming what is wrong. */
export async function binaryVersion<V>(binary: string, rules: VersionRules<V>): Promise<V> {
  let out: string;
  try {
    out = (await runCommand(binary, ['--version'], { timeoutMs: 10_000 })).stdout;
  } catch (err) {
    throw new ProviderUnavailableError(`${rules.vmm} is not usable: ${asHypercoreError(err).message}`, err);
  }
  const version = rules.parse(out);
  if (version === undefined) throw new ProviderUnavailableError(`${binary} --version printed ${JSON.stringify(out.split('\n')[0]!.slice(0, 80))}, not a ${rules.vmm} version`);
  rules.check(version, binary);
  return version;
}

/** doctor's line for a KVM-only VMM whose binary answered with `version`. */
export async function kvmReport(name: ProviderName, vmm: string, version: string, kvmDevice = '/dev/kvm'): Promise<ProviderReport> {
  try {
    await access(kvmDevice, constants.R_OK | constants.W_OK);
  } catch {
    return { name, usable: false, version, detail: `${vmm} needs KVM, and ${kvmDevice} cannot be opened for reading and writing` };
  }
  return { name, usable: true, version, detail: `KVM (${kvmDevice})` };
}

/**
 * Polls the API socket until `ping` succeeds; fails at once when the process is gone, and after
 * `readyMs` with the last error.
 */
export async function waitForApiSocket(socket: string, pid: number, vmm: string, ping: () => Promise<unknown>, readyMs: number): Promise<void> {
  const deadline = Date.now() + readyMs;
  for (;;) {
    if (!(await isAlive(pid))) throw new ProviderFailedError(`${vmm} exited before its API socket answered`);
    if ((await lstat(socket).catch(() => undefined))?.isSocket()) {
      try {
        await ping();
        return;
      } catch (err) {
        if (Date.now() > deadline) throw err;
      }
    }
    if (Date.now() > deadline) throw new ProviderFailedError(`${vmm} did not open its API socket ${socket} within ${readyMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * What the VMM wrote to `file` since it was `since` bytes long (its launch), the last KiB on one
 * line, for the error of a failed launch: earlier boots' lines would only mislead. A file now
 * shorter than `since` was rotated meanwhile, and is read from its start.
 */
export async function launchFailureTail(file: string, since: number): Promise<string> {
  const size = await fileLength(file);
  const from = size >= since ? Math.max(since, size - 4096) : Math.max(0, size - 4096);
  if (size <= from) return '';
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.alloc(size - from);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, from);
    return tailLines(buffer.subarray(0, bytesRead).toString('utf8'), 1024).trim().replace(/\s+/g, ' ').slice(-1500);
  } finally {
    await handle.close();
  }
}

/** The size of `file` now (0 when it does not exist), for `launchFailureTail`. */
export async function fileLength(file: string): Promise<number> {
  return (await stat(file).catch(() => undefined))?.size ?? 0;
}

/** Ends the VMM of `vmId` (`pid`, else the one its pidfile names); a VMM already gone is fine. */
export async function killVmm(vmId: string, pidFile: string, pid: number | undefined): Promise<void> {
  const target = pid ?? (await readPidFile(pidFile));
  if (target !== undefined) await killAndWait(target, vmId);
}
