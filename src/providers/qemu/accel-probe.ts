/**
 * Chooses QEMU's accelerator (`-accel kvm` or `-accel tcg`). For `auto`, a /dev/kvm that opens
 * is not enough: on some hosts (a PVM backend, nested setups) KVM works but runs guests orders
 * of magnitude slower than TCG. So we time the same tiny guest (accel-bios.ts) under both and
 * keep KVM only if it is not slower. Each run has a hard timeout, so the probe is bounded.
 */
import { constants } from 'node:fs';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CommandFailedError, ProviderUnavailableError } from '../../core/errors.js';
import type { AccelMode } from '../../core/vm.js';
import { runCommand } from '../../system/command.js';
import { DEBUG_EXIT_PORT, PROBE_EXIT_STATUS, buildAccelBios } from './accel-bios.js';

export type Accel = 'kvm' | 'tcg';

export interface AccelProbeOptions {
  qemuBinary: string;
  /** Hard limit for the KVM run, in ms. Default 3000. The TCG run gets max(this, 10 s). */
  timeoutMs?: number;
  /** Existing or creatable folder for the temporary BIOS image (removed afterwards). */
  workDir: string;
  /** The KVM device; tests point it elsewhere. Default `/dev/kvm`. */
  kvmDevice?: string;
  /** Busy-loop length; the default makes TCG take about 0.1 s on the 2-core dev host. */
  iterations?: number;
}

export interface AccelDecision {
  accel: Accel;
  /** One sentence for logs and `hypercore doctor`: why this accelerator. */
  reason: string;
  kvmMs?: number;
  tcgMs?: number;
}

/** One timed probe run; `timedOut` runs were SIGKILLed at the limit. */
export type ProbeRun = { ok: true; ms: number } | { ok: false; ms: number; timedOut: boolean; reason: string };

export type KvmAccess = { usable: true } | { usable: false; missing: boolean; reason: string };

/** ~1.4 ns per iteration under TCG on the dev host (QEMU 7.2): ~70 ms of loop + ~40 ms of start-up. */
export const DEFAULT_PROBE_ITERATIONS = 50_000_000;
const DEFAULT_KVM_TIMEOUT_MS = 3_000;
const MIN_TCG_TIMEOUT_MS = 10_000;
/** KVM may be this much slower than TCG and still win: process start-up noise, not guest speed. */
const NOISE_FIXED_MS = 50;
const NOISE_RATIO = 1.25;

/** Whether `device` can be opened read-write, which is what QEMU needs for `-accel kvm`. */
export async function checkKvmAccess(device = '/dev/kvm'): Promise<KvmAccess> {
  try {
    const handle = await open(device, constants.O_RDWR);
    await handle.close();
    return { usable: true };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    if (code === 'ENOENT') return { usable: false, missing: true, reason: `${device} does not exist (no KVM on this host)` };
    return { usable: false, missing: false, reason: `${device} cannot be opened read-write (${code})` };
  }
}

/** The QEMU command line that boots `biosPath` under `accel` and exits through isa-debug-exit. */
export function probeArgs(accel: Accel, biosPath: string): string[] {
  return [
    '-M', 'pc', '-accel', accel, '-bios', biosPath,
    '-nodefaults', '-display', 'none', '-no-user-config', '-m', '16',
    '-device', `isa-debug-exit,iobase=0x${DEBUG_EXIT_PORT.toString(16)},iosize=0x04`,
  ];
}

/**
 * Boots the probe BIOS once and times it (wall clock, QEMU start-up included). QEMU runs under
 * `setpriv --pdeathsig KILL` so it dies with us, and is SIGKILLed at `timeoutMs`.
 */
export async function runAccelProbe(qemuBinary: string, accel: Accel, biosPath: string, timeoutMs: number): Promise<ProbeRun> {
  const started = performance.now();
  const elapsed = (): number => Math.round(performance.now() - started);
  try {
    await runCommand('setpriv', ['--pdeathsig', 'KILL', qemuBinary, ...probeArgs(accel, biosPath)], { timeoutMs, stderrTailBytes: 1024 });
    // Exit 0 means QEMU stopped without the guest reaching the debug-exit port.
    return { ok: false, ms: elapsed(), timedOut: false, reason: 'QEMU exited with 0 before the probe loop finished' };
  } catch (err) {
    const ms = elapsed();
    // isa-debug-exit turns the guest's final `out` into this status (see accel-bios.ts): success.
    if (err instanceof CommandFailedError && err.exitCode === PROBE_EXIT_STATUS && err.signal === null) return { ok: true, ms };
    // runCommand kills at the limit, so a run that lasted that long was the timeout.
    return { ok: false, ms, timedOut: ms >= timeoutMs, reason: err instanceof Error ? err.message : String(err) };
  }
}

/** Runs the TCG probe and, if /dev/kvm is usable, the KVM probe; picks the faster (see file doc). */
export async function probeAccel(options: AccelProbeOptions): Promise<AccelDecision> {
  const kvmTimeoutMs = options.timeoutMs ?? DEFAULT_KVM_TIMEOUT_MS;
  const tcgTimeoutMs = Math.max(kvmTimeoutMs, MIN_TCG_TIMEOUT_MS);
  const kvmAccess = await checkKvmAccess(options.kvmDevice);
  await mkdir(options.workDir, { recursive: true });
  const dir = await mkdtemp(join(options.workDir, 'accel-probe-'));
  try {
    const bios = join(dir, 'probe-bios.bin');
    await writeFile(bios, buildAccelBios(options.iterations ?? DEFAULT_PROBE_ITERATIONS));
    // Sequential on purpose: concurrent runs would compete for the (few) host cores and skew both.
    const tcg = await runAccelProbe(options.qemuBinary, 'tcg', bios, tcgTimeoutMs);
    const kvm = kvmAccess.usable ? await runAccelProbe(options.qemuBinary, 'kvm', bios, kvmTimeoutMs) : undefined;
    return chooseAccel(tcg, kvm, kvmAccess, kvmTimeoutMs);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The decision rule, pure so it can be tested: KVM wins only if its run finished and took at
 * most 1.25x + 50 ms of the TCG run. Throws ProviderUnavailableError when neither run worked.
 */
export function chooseAccel(tcg: ProbeRun, kvm: ProbeRun | undefined, access: KvmAccess, kvmTimeoutMs: number): AccelDecision {
  const tcgMs = tcg.ok ? tcg.ms : undefined;
  const kvmMs = kvm?.ok ? kvm.ms : undefined;
  const times = { ...(kvmMs === undefined ? {} : { kvmMs }), ...(tcgMs === undefined ? {} : { tcgMs }) };
  if (!tcg.ok) {
    if (kvm?.ok) return { accel: 'kvm', reason: `kvm ran the probe in ${kvm.ms} ms; the tcg probe failed: ${tcg.reason}`, ...times };
    const kvmWhy = kvm ? `; the kvm probe failed too: ${kvm.reason}` : access.usable ? '' : `; ${access.reason}`;
    throw new ProviderUnavailableError(`QEMU cannot run a minimal guest: ${tcg.reason}${kvmWhy}`);
  }
  if (!access.usable) return { accel: 'tcg', reason: access.reason, ...times };
  if (!kvm || !kvm.ok) {
    const why = kvm?.timedOut ? `did not finish the probe within ${kvmTimeoutMs} ms` : `failed: ${kvm?.reason ?? 'not run'}`;
    return { accel: 'tcg', reason: `kvm ${why} (tcg took ${tcg.ms} ms)`, ...times };
  }
  const limit = tcg.ms * NOISE_RATIO + NOISE_FIXED_MS;
  if (kvm.ms <= limit) return { accel: 'kvm', reason: `kvm ran the probe in ${kvm.ms} ms vs ${tcg.ms} ms for tcg`, ...times };
  return { accel: 'tcg', reason: `kvm works but is slower than tcg (${kvm.ms} ms vs ${tcg.ms} ms)`, ...times };
}

/** Auto decisions per binary (and KVM device) for the process lifetime: hardware does not change. */
const autoCache = new Map<string, Promise<AccelDecision>>();

/**
 * Turns the configured `accel` into a concrete one. `tcg` is taken as is; `kvm` is checked for
 * access only (an explicit choice is honoured even if slow) and a missing or closed /dev/kvm
 * rejects with ProviderUnavailableError; `auto` probes once per binary and caches the result
 * (a failed probe is not cached, so a later call retries).
 */
export async function resolveAccel(requested: AccelMode, options: AccelProbeOptions): Promise<AccelDecision> {
  if (requested === 'tcg') return { accel: 'tcg', reason: 'accel = "tcg" was configured' };
  if (requested === 'kvm') {
    const access = await checkKvmAccess(options.kvmDevice);
    if (!access.usable) {
      const hint = access.missing ? 'enable virtualization (or nested virtualization) on this host' : 'run as a user with read-write access to it (e.g. in the kvm group)';
      throw new ProviderUnavailableError(`accel = "kvm" was configured but ${access.reason}; ${hint}, or set accel = "auto" or "tcg"`);
    }
    return { accel: 'kvm', reason: 'accel = "kvm" was configured' };
  }
  const key = `${options.qemuBinary}\0${options.kvmDevice ?? '/dev/kvm'}`;
  let decision = autoCache.get(key);
  if (!decision) {
    decision = probeAccel(options);
    autoCache.set(key, decision);
    decision.catch(() => autoCache.delete(key));
  }
  return decision;
}

/** Forgets cached `auto` decisions (tests; or after the host's KVM setup changed). */
export function clearAccelCache(): void {
  autoCache.clear();
}
