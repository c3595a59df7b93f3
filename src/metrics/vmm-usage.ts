/**
 * What a VMM process costs the host, read from /proc as kata-monitor reads its hypervisor's: CPU
 * time from /proc/<pid>/stat (utime + stime), resident memory from /proc/<pid>/status (VmRSS).
 */
import { readFile } from 'node:fs/promises';

export interface VmmUsage {
  /** User plus system CPU time the process used, in seconds. */
  cpuSeconds: number;
  /** Resident set size, in bytes. */
  rssBytes: number;
}

/**
 * Clock ticks per second of the times in /proc/<pid>/stat: the kernel's USER_HZ, which is 100 on
 * every architecture Hypercore runs on (x86-64, arm64) whatever the kernel's internal HZ.
 */
const USER_HZ = 100;

/** utime + stime of a /proc/<pid>/stat line, in seconds; undefined if the line is not one. */
export function cpuSecondsOfStat(stat: string): number | undefined {
  // The command name (field 2) is in parentheses and may itself hold spaces or parentheses: fields
  // are counted after the last ')'. There, field 3 (state) is index 0, so utime (14) is 11, stime 12.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isSafeInteger(utime) || !Number.isSafeInteger(stime) || stat.lastIndexOf(')') < 0) return undefined;
  return (utime + stime) / USER_HZ;
}

/** VmRSS of a /proc/<pid>/status text, in bytes; undefined when absent (a zombie has none). */
export function rssBytesOfStatus(status: string): number | undefined {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  return m ? Number(m[1]) * 1024 : undefined;
}

/** The usage of process `pid`, or undefined when it is gone or is a zombie. */
export async function readVmmUsage(pid: number, procRoot = '/proc'): Promise<VmmUsage | undefined> {
  try {
    const [stat, status] = await Promise.all([readFile(`${procRoot}/${pid}/stat`, 'utf8'), readFile(`${procRoot}/${pid}/status`, 'utf8')]);
    const cpuSeconds = cpuSecondsOfStat(stat);
    const rssBytes = rssBytesOfStatus(status);
    return cpuSeconds === undefined || rssBytes === undefined ? undefined : { cpuSeconds, rssBytes };
  } catch {
    return undefined;
  }
}
