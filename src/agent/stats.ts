/**
 * What the agent reports about the VM: Hello's identity (versions, kernel, boot id) and GetStats
 * (uptime, load, memory, process count), read from /proc. The parsers are pure for the tests.
 */
import { readdir, readFile } from 'node:fs/promises';
import { release } from 'node:os';
import type { HelloResponse, Stats } from './protocol/messages.js';
import { readNow } from './read-now.js';

/** Version of this agent (reported by Hello; bump with protocol-visible changes). */
export const AGENT_VERSION = '0.1.0';

/** Seconds of /proc/uptime ("12345.67 2345.67") as milliseconds. */
export function parseUptimeMs(text: string): number {
  const seconds = Number(text.trim().split(/\s+/)[0]);
  return Number.isFinite(seconds) ? Math.round(seconds * 1000) : 0;
}

/** The 1-minute load of /proc/loadavg ("0.12 0.05 0.01 1/123 456"). */
export function parseLoad1(text: string): number {
  const load = Number(text.trim().split(/\s+/)[0]);
  return Number.isFinite(load) ? load : 0;
}

/** MemTotal and MemAvailable of /proc/meminfo, in bytes. */
export function parseMeminfo(text: string): { totalBytes: number; availableBytes: number } {
  const kib = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+)\\s*kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : 0;
  };
  const total = kib('MemTotal');
  // Kernels before 3.14 have no MemAvailable; free + cache is the classic estimate.
  const available = /^MemAvailable:/m.test(text) ? kib('MemAvailable') : kib('MemFree') + kib('Cached');
  return { totalBytes: total, availableBytes: available };
}

/** Number of processes: the numeric entries of /proc. */
export function countProcesses(entries: readonly string[]): number {
  return entries.filter((e) => /^\d+$/.test(e)).length;
}

async function read(path: string): Promise<string> {
  return readFile(path, 'utf8').catch(() => '');
}

/** GetStats from `proc` (default /proc). */
export async function readStats(proc = '/proc'): Promise<Stats> {
  const [uptime, loadavg, meminfo, entries] = await Promise.all([
    read(`${proc}/uptime`),
    read(`${proc}/loadavg`),
    read(`${proc}/meminfo`),
    readdir(proc).catch(() => [] as string[]),
  ]);
  const mem = parseMeminfo(meminfo);
  return {
    uptimeMs: parseUptimeMs(uptime),
    load1: parseLoad1(loadavg),
    memTotalBytes: mem.totalBytes,
    memAvailableBytes: mem.availableBytes,
    processes: countProcesses(entries),
  };
}

/** Hello's answer; its two /proc files are read synchronously (see read-now.ts). */
export function helloResponse(workloadStarted: boolean, proc = '/proc'): HelloResponse {
  return {
    agentVersion: AGENT_VERSION,
    nodeVersion: process.version,
    kernel: release(),
    uptimeMs: parseUptimeMs(readNow(`${proc}/uptime`) ?? ''),
    bootId: (readNow(`${proc}/sys/kernel/random/boot_id`) ?? '').trim(),
    workloadStarted,
  };
}
