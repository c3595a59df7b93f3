/** hypercored's settings: flags first, then environment, then defaults. */
import { join, resolve } from 'node:path';

export interface DaemonSettings {
  rootDir: string;
  runDir: string;
  socket: string;
  bootDir: string;
  logLevel: string;
  consoleLogCapBytes: number;
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
  insecureRegistry?: string[];
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
    agentTimeoutMs: Number(env['HYPERCORE_AGENT_TIMEOUT'] ?? 120) * 1000,
    insecureRegistries: [
      ...(flags.insecureRegistry ?? []),
      ...(env['HYPERCORE_INSECURE_REGISTRIES'] ?? '').split(',').map((s) => s.trim()).filter(Boolean),
    ],
  };
}
