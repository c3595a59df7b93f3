/** hypercored's settings: flags first, then environment, then defaults. */
import { join, resolve } from 'node:path';
import { InvalidArgumentError } from '../core/errors.js';
import { DEFAULT_WORKLOAD_LOG_CAP_BYTES } from '../providers/vm-logs.js';

export interface DaemonSettings {
  rootDir: string;
  runDir: string;
  socket: string;
  bootDir: string;
  logLevel: string;
  consoleLogCapBytes: number;
  /** Cap of each VM's workload.log, kept live plus one rotated file (env HYPERCORE_WORKLOAD_LOG_CAP, bytes). */
  workloadLogCapBytes: number;
  /** Registries reached over plain HTTP besides localhost (which always is, as in Docker). */
  insecureRegistries: string[];
  /** How long a booting guest's agent may take to answer (env HYPERCORE_AGENT_TIMEOUT, seconds). */
  agentTimeoutMs: number;
}

export const DEFAULT_ROOT = '/var/lib/hypercore';
export const DEFAULT_RUN_DIR = '/run/hypercore';
export const DEFAULT_BOOT_DIR = '/var/lib/hypercore/boot';

export interface SettingsInput {
  root?: string;
  runDir?: string;
  socket?: string;
  bootDir?: string;
  logLevel?: string;
  consoleLogCapBytes?: number;
  workloadLogCap?: string;
  insecureRegistry?: string[];
}

/** A positive whole number of bytes, with an optional K, M or G suffix (powers of 1024). */
function byteCount(text: string | undefined, fallback: number, what: string): number {
  if (text === undefined || text.trim() === '') return fallback;
  const m = /^(\d+)\s*([KMG]?)i?B?$/i.exec(text.trim());
  const scale = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[(m?.[2] ?? '').toUpperCase() as '' | 'K' | 'M' | 'G'];
  const bytes = m ? Number(m[1]) * scale : NaN;
  if (!(Number.isSafeInteger(bytes) && bytes > 0)) throw new InvalidArgumentError(`${what} "${text}" is not a size in bytes like 16777216 or 16M`);
  return bytes;
}

export function resolveSettings(flags: SettingsInput, env: NodeJS.ProcessEnv): DaemonSettings {
  const rootDir = resolve(flags.root ?? env['HYPERCORE_ROOT'] ?? DEFAULT_ROOT);
  const runDir = resolve(flags.runDir ?? env['HYPERCORE_RUN_DIR'] ?? DEFAULT_RUN_DIR);
  return {
    rootDir,
    runDir,
    socket: resolve(flags.socket ?? env['HYPERCORE_SOCKET'] ?? join(runDir, 'hypercore.sock')),
    bootDir: resolve(flags.bootDir ?? env['HYPERCORE_BOOT_DIR'] ?? DEFAULT_BOOT_DIR),
    logLevel: flags.logLevel ?? env['HYPERCORE_LOG_LEVEL'] ?? 'info',
    consoleLogCapBytes: flags.consoleLogCapBytes ?? 1024 * 1024,
    workloadLogCapBytes: byteCount(flags.workloadLogCap ?? env['HYPERCORE_WORKLOAD_LOG_CAP'], DEFAULT_WORKLOAD_LOG_CAP_BYTES, 'workload log cap'),
    agentTimeoutMs: Number(env['HYPERCORE_AGENT_TIMEOUT'] ?? 120) * 1000,
    insecureRegistries: [
      ...(flags.insecureRegistry ?? []),
      ...(env['HYPERCORE_INSECURE_REGISTRIES'] ?? '').split(',').map((s) => s.trim()).filter(Boolean),
    ],
  };
}
