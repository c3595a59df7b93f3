/**
 * Restored: the guest runs from a snapshot, so its memory is another VM's. This makes it this VM:
 * - the clock jumps to the host's time (it stood still from the snapshot to the restore);
 * - the kernel's random pool gets the host's fresh entropy and reseeds at once (RNDRESEEDCRNG), so
 *   two guests restored from one snapshot never read the same random bytes;
 * - hostname (the VM's and the workload's UTS namespace), machine id and eth0's MAC, address,
 *   route and DNS become this VM's.
 * Node has no settimeofday, ioctl or setns, so the exec helper's `restore` mode (exec-helper-restore.c,
 * a static C program already in the guest for execs) makes those calls and runs the `ip` commands of
 * the network identity. It reads its one request from stdin, so it can be started ahead of need (see
 * spare-process.ts) and a restore finds it running. It is given the guest's own clock reading at the
 * request's arrival, so the time until it reads its clock is added.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Code, TtrpcError } from '../ttrpc/index.js';
import type { RestoredRequest } from './protocol/messages.js';
import { pidInFile, readNow } from './read-now.js';

/** The exec helper's argument for its restore mode. */
export const RESTORE_ARG = 'restore';

/** Restoring waits at most this long for the helper. */
export const RESTORE_TIMEOUT_MS = 30_000;

export interface RestoreTarget {
  /**
   * Runs `exec-helper restore` with its request's fields: clock, entropy (hex), hostname, UTS
   * namespace, MAC, address, gateway (a spare helper where there is one).
   */
  identity(fields: readonly string[]): Promise<unknown>;
  /** The workload container's init pid while it runs (its UTS namespace gets the hostname too). */
  workloadPid(): number | undefined;
  /** The new hostname, for the HOSTNAME of processes started from now on. */
  renamed(hostname: string): void;
  /** /run/hc: machine-id and resolv.conf live there (bound into the workload, so rewritten in place). */
  hcDir: string;
  /** /proc */
  proc: string;
  /** The guest's clock now, in ms (Date.now; tests fix it). */
  now(): number;
}

/** VM names: letters, digits, '_', '.', '-' (sethostname takes any bytes up to 64). */
const HOSTNAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const MACHINE_ID = /^[0-9a-f]{32}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const IPV4 = /^(\d{1,3})(\.\d{1,3}){3}$/;

function invalid(message: string): TtrpcError {
  return new TtrpcError(Code.INVALID_ARGUMENT, message);
}

/** Checks everything before changing anything: a bad request changes nothing. */
function check(req: RestoredRequest): void {
  if (!Number.isSafeInteger(req.unixTimeMs) || req.unixTimeMs <= 0) throw invalid('unix_time_ms is required');
  if (!req.entropy || req.entropy.length < 16 || req.entropy.length > 4096) throw invalid('entropy must be 16 to 4096 bytes');
  if (!HOSTNAME.test(req.hostname)) throw invalid(`hostname "${req.hostname}" is not a valid host name`);
  if (!MACHINE_ID.test(req.machineId)) throw invalid('machine_id must be 32 lowercase hex digits');
  const n = req.network;
  if (n) {
    if (!MAC.test(n.mac)) throw invalid(`network.mac "${n.mac}" is not a MAC address`);
    const [ip, prefix] = n.address.split('/');
    if (!IPV4.test(ip ?? '') || !/^\d{1,2}$/.test(prefix ?? '') || Number(prefix) > 32) throw invalid(`network.address "${n.address}" is not A.B.C.D/N`);
    if (n.gateway && !IPV4.test(n.gateway)) throw invalid(`network.gateway "${n.gateway}" is not an IPv4 address`);
    for (const d of n.dns) if (!IPV4.test(d)) throw invalid(`network.dns "${d}" is not an IPv4 address`);
  }
}

export async function applyRestore(req: RestoredRequest, target: RestoreTarget): Promise<void> {
  const seen = target.now();
  check(req);
  const pid = target.workloadPid();
  const ns = pid === undefined ? '' : join(target.proc, String(pid), 'ns', 'uts');
  const n = req.network;
  await target.identity([String(req.unixTimeMs), String(seen), Buffer.from(req.entropy).toString('hex'), req.hostname, ns, n?.mac ?? '', n?.address ?? '', n?.gateway ?? '']);
  target.renamed(req.hostname);
  // writeFile truncates the same inode, which is what the workload's bind mount shows. Synchronous,
  // as every file access on this path (see read-now.ts).
  writeFileSync(join(target.hcDir, 'machine-id'), `${req.machineId}\n`);
  if (!n) return;
  writeFileSync(join(target.hcDir, 'resolv.conf'), n.dns.map((d) => `nameserver ${d}\n`).join(''));
}

/** The container init's pid from crun's pid file, while that process exists (read synchronously: see read-now.ts). */
export function pidFromFile(pidFile: string, proc: string): number | undefined {
  const pid = pidInFile(pidFile);
  return pid === undefined || readNow(join(proc, String(pid), 'stat')) === undefined ? undefined : pid;
}
