/**
 * OOM kills in the guest, counted per memory cgroup from the kernel's log (/dev/kmsg).
 *
 * A container's own `memory.events` counts them (`oom_kill`), but `crun run` removes the
 * container's cgroup as soon as its init has exited, before the host asks how the container
 * ended, and an OOM kill usually is how it ended. The kernel's log outlives the cgroup: for each
 * kill it logs one line like
 *   oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/hc/web,task_memcg=/hc/web,task=sh,pid=42,uid=0
 * naming the cgroup of the killed process (`task_memcg`, a path from the cgroup root), whatever
 * limit was hit: the same kills `memory.events` counts for that cgroup.
 *
 * /dev/kmsg gives one record per read(2), "<level>,<seq>,<usec>,<flags>;<text>"; EAGAIN when
 * none is left (opened non-blocking), EPIPE when records were overwritten before being read.
 */
import { constants, openSync, readSync } from 'node:fs';

/** Reads the next log record's text, or undefined when there is none now. */
export type RecordReader = () => string | undefined;

/** The cgroup of the process an `oom-kill:` record says was killed (undefined for any other record). */
export function oomKilledCgroup(record: string): string | undefined {
  const text = record.slice(record.indexOf(';') + 1);
  if (!text.startsWith('oom-kill:')) return undefined;
  return /,task_memcg=([^,\s]+)/.exec(text)?.[1];
}

/** Most records one drain reads: a bound on the work a flood of kernel messages can cause. */
const MAX_RECORDS_PER_DRAIN = 10_000;
/** A kmsg record is at most about 1 KiB of text plus its dictionary: 8 KiB holds any. */
const RECORD_BUFFER_BYTES = 8192;

/**
 * The kernel log as a RecordReader, open for the agent's life (undefined when it cannot be
 * opened: then only memory.events counts).
 */
export function kmsgReader(path = '/dev/kmsg'): RecordReader | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  const buf = Buffer.alloc(RECORD_BUFFER_BYTES);
  const read = (): string | undefined => {
    for (;;) {
      try {
        const n = readSync(fd, buf, 0, buf.length, null);
        return n === 0 ? undefined : buf.toString('utf8', 0, n);
      } catch (err) {
        // Overwritten records: the read position moved on to the oldest kept one; read that.
        if ((err as NodeJS.ErrnoException).code === 'EPIPE') continue;
        return undefined; // EAGAIN: nothing more now
      }
    }
  };
  return read;
}

export class OomKills {
  private readonly counts = new Map<string, number>();

  /**
   * Reads past what the log holds already, without parsing it: kills before now are not any
   * container's of this agent. Bounded as a drain is (the kernel's ring holds fewer records).
   */
  constructor(private readonly next: RecordReader | undefined) {
    for (let i = 0; next && i < MAX_RECORDS_PER_DRAIN && next() !== undefined; i++);
  }

  private drain(): void {
    if (!this.next) return;
    for (let i = 0; i < MAX_RECORDS_PER_DRAIN; i++) {
      const record = this.next();
      if (record === undefined) return;
      const cgroup = oomKilledCgroup(record);
      if (cgroup) this.counts.set(cgroup, (this.counts.get(cgroup) ?? 0) + 1);
    }
  }

  /** OOM kills of processes in `cgroup` (e.g. /hc/web) or below it, since it was last forgotten. */
  of(cgroup: string): number {
    this.drain();
    let total = 0;
    for (const [path, n] of this.counts) if (path === cgroup || path.startsWith(`${cgroup}/`)) total += n;
    return total;
  }

  /** A new container takes the cgroup path: what was logged for an earlier one is not its. */
  forget(cgroup: string): void {
    this.drain();
    for (const path of [...this.counts.keys()]) if (path === cgroup || path.startsWith(`${cgroup}/`)) this.counts.delete(path);
  }
}
