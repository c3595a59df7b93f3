/**
 * A container's cgroup v2 numbers (read by the agent in the guest) as containerd's
 * io.containerd.cgroups.v2.Metrics, which `ctr task metrics` and CRI's stats decode.
 */
import type { GuestContainerStats } from '../core/pod-agent.js';
import { anyOf, cgroupV2Metrics, fieldNames, type AnyMessage, type CgroupV2Metrics } from './protocol/containerd.js';

const camel = (key: string): string => key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

/** The keys of a cgroup file that are fields of `typeName`, renamed to the message's field names. */
function pick(values: Record<string, number>, typeName: string): Record<string, number> {
  const fields = new Set(fieldNames(typeName));
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(values)) if (fields.has(camel(key))) out[camel(key)] = value;
  return out;
}

/** cgroup v2 says "max" for no limit, which the agent reads as 0; containerd's cgroups library reports the largest uint64. */
const NO_LIMIT = '18446744073709551615';
const limit = (value: number): number | string => (value === 0 ? NO_LIMIT : value);

export function metricsOf(stats: GuestContainerStats): AnyMessage {
  const events = stats.memoryEvents;
  const metrics: CgroupV2Metrics = {
    pids: { current: stats.pidsCurrent, limit: stats.pidsMax },
    cpu: pick(stats.cpu, 'io.containerd.cgroups.v2.CPUStat'),
    memory: { ...pick(stats.memory, 'io.containerd.cgroups.v2.MemoryStat'), usage: stats.memoryCurrent, usageLimit: limit(stats.memoryMax), swapUsage: stats.swapCurrent, swapLimit: limit(stats.swapMax) },
    io: { usage: stats.io.map((d) => ({ major: d.major, minor: d.minor, rbytes: d.values['rbytes'] ?? 0, wbytes: d.values['wbytes'] ?? 0, rios: d.values['rios'] ?? 0, wios: d.values['wios'] ?? 0 })) },
    memoryEvents: { low: events['low'] ?? 0, high: events['high'] ?? 0, max: events['max'] ?? 0, oom: events['oom'] ?? 0, oomKill: events['oom_kill'] ?? 0 },
  };
  return anyOf(cgroupV2Metrics, metrics);
}
