/**
 * What a host process costs in memory, from /proc: PSS (shared pages split among their users, so
 * a sum over processes does not count a page twice) and RSS.
 */
import { readFileSync } from 'node:fs';
import { rssBytesOfStatus } from '../../src/metrics/vmm-usage.js';

/** The Pss line of /proc/PID/smaps_rollup, in bytes. */
export function pss(pid: number): number {
  const m = /^Pss:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  if (!m) throw new Error(`no Pss in /proc/${pid}/smaps_rollup`);
  return Number(m[1]) * 1024;
}

/** VmRSS of /proc/PID/status, in bytes. */
export function rss(pid: number): number {
  const bytes = rssBytesOfStatus(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (bytes === undefined) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return bytes;
}
