/**
 * hypercored's settings: flags first, then environment, then defaults. Every value is checked
 * here, before anything starts, and all problems are reported at once naming the flag or
 * environment variable they came from (a bad HYPERCORE_AGENT_TIMEOUT would otherwise become NaN
 * deep inside the agent client, and a bad log level would throw inside pino).
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { ConfigInvalidError, type ValidationIssue } from '../core/errors.js';
import type { ListenAddress } from '../api/remote-listener.js';
import { DEFAULT_WORKLOAD_LOG_CAP_BYTES } from '../providers/vm-logs.js';
import type { DaemonConfigFile } from './config-file.js';

/** The API on TCP for other hosts; off unless `listen` names an address. */
export interface RemoteSettings {
  listen: ListenAddress[];
  /** Holds ca.pem, server-cert.pem and server-key.pem (as `hypercore tls init` writes them). */
  tlsDir?: string;
  /** Allows http:// listeners on loopback addresses (plain TCP; tokens only). */
  insecureLoopback: boolean;
  /** Directories under which remote callers may name host files (kernel, initrd, drive, VMM binary, archive). */
  allowHostPaths: string[];
  /** Host bridges a remote caller's VM may join with `mode = "bridge"` (none by default). */
  allowBridges: string[];
}

export interface DaemonSettings {
  rootDir: string;
  runDir: string;
  socket: string;
  bootDir: string;
  logLevel: LogLevel;
  consoleLogCapBytes: number;
  /** Cap of each VM's workload.log, kept live plus one rotated file (env HYPERCORE_WORKLOAD_LOG_CAP, bytes). */
  workloadLogCapBytes: number;
  /** Registries reached over plain HTTP besides localhost (which always is, as in Docker). */
  insecureRegistries: string[];
  /** How long a booting guest's agent may take to answer (env HYPERCORE_AGENT_TIMEOUT, seconds). */
  agentTimeoutMs: number;
  /** Where guests' RAM files live (a tmpfs; each daemon its own directory). */
  memoryDir: string;
  /** Largest compressed image (sum of its layers) a pull or import may bring in, in bytes; also the cap of one blob. */
  maxImageBytes: number;
  remote: RemoteSettings;
}

export const DEFAULT_ROOT = '/var/lib/hypercore';
export const DEFAULT_RUN_DIR = '/run/hypercore';
export const DEFAULT_BOOT_DIR = '/var/lib/hypercore/boot';
export const logLevels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof logLevels)[number];
const MAX_AGENT_TIMEOUT_S = 24 * 3600;
/** 8 GiB: larger than any common base image, small enough that one pull cannot fill a host. */
const DEFAULT_MAX_IMAGE_MIB = 8192;

export interface SettingsInput {
  root?: string;
  runDir?: string;
  socket?: string;
  bootDir?: string;
  logLevel?: string;
  consoleLogCapBytes?: number;
  insecureRegistry?: string[];
  /** MiB; see DaemonSettings.maxImageBytes. */
  maxImageSize?: string;
  memoryDir?: string;
  /** Bytes with an optional K, M or G suffix; see DaemonSettings.workloadLogCapBytes. */
  workloadLogCap?: string;
  listen?: string[];
  tlsDir?: string;
  insecureLoopback?: boolean;
  allowHostPath?: string[];
  allowBridge?: string[];
}

/** A value and where it came from, for error messages. */
interface Sourced {
  value: string;
  from: string;
}

/** The flag's value, else the environment variable's, else undefined. */
function pick(flag: string | undefined, flagName: string, env: NodeJS.ProcessEnv, envName: string): Sourced | undefined {
  if (flag !== undefined) return { value: flag, from: flagName };
  const fromEnv = env[envName];
  return fromEnv !== undefined ? { value: fromEnv, from: envName } : undefined;
}

/** A whole number of bytes with an optional K, M or G suffix (powers of 1024), or undefined. */
function byteCount(text: string): number | undefined {
  const m = /^(\d+)\s*([KMG]?)i?B?$/i.exec(text.trim());
  if (!m) return undefined;
  const bytes = Number(m[1]) * { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** host, host:port or [v6]:port, as Docker's --insecure-registry takes them (no scheme, no path). */
const registryHost = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/;

function isLoopback(host: string): boolean {
  return isIP(host) === 4 ? host.startsWith('127.') : host === '::1';
}

/** `https://ADDR:PORT` (or `http://` on loopback with insecureLoopback) as a ListenAddress, or the problem. */
export function parseListenAddress(text: string, insecureLoopback: boolean): ListenAddress | string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'must be a URL like https://0.0.0.0:7443';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'the scheme must be https (or http on a loopback address, with --insecure-loopback)';
  if (url.username || url.password || url.pathname !== '/' || url.search || url.hash || text.endsWith('/')) return 'must be scheme://ADDR:PORT, nothing more';
  const named = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const host = named === 'localhost' ? '127.0.0.1' : named;
  if (isIP(host) === 0) return 'the address must be an IP address (0.0.0.0, ::, 127.0.0.1, ...) or localhost';
  const scheme = url.protocol === 'https:' ? 'https' : 'http';
  if (scheme === 'http' && !(insecureLoopback && isLoopback(host))) {
    return isLoopback(host) ? 'plain TCP (http://) needs --insecure-loopback' : 'plain TCP (http://) is refused off loopback: use https://';
  }
  return { scheme, host, port: url.port === '' ? (scheme === 'https' ? 443 : 80) : Number(url.port) };
}

/**
 * The API socket as the CLI finds it: `--socket`, else HYPERCORE_SOCKET, else the run dir's
 * (HYPERCORE_RUN_DIR), else the default. Only these: a client must not fail on the daemon's other settings.
 */
export function apiSocketPath(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return resolve(flag ?? env['HYPERCORE_SOCKET'] ?? join(env['HYPERCORE_RUN_DIR'] ?? DEFAULT_RUN_DIR, 'hypercore.sock'));
}

/**
 * The remote listener's settings: flags, else the configuration file. No environment variables:
 * HYPERCORE_HOST and HYPERCORE_TLS_DIR are the CLI's, and a daemon started from a shell where they
 * are set for the CLI must not open a port.
 */
function resolveRemote(flags: SettingsInput, file: DaemonConfigFile | undefined, bad: (s: Sourced, message: string) => void): RemoteSettings {
  const inFile = (key: string): string => `${file?.file ?? ''}: remote.${key}`;
  const insecureLoopback = flags.insecureLoopback ?? file?.remote.insecureLoopback ?? false;
  const listenSources: Sourced[] = flags.listen?.length ? flags.listen.map((value) => ({ value, from: '--listen' })) : (file?.remote.listen ?? []).map((value) => ({ value, from: inFile('listen') }));
  const tlsDir = flags.tlsDir !== undefined ? { value: flags.tlsDir, from: '--tls-dir' } : file?.remote.tlsDir !== undefined ? { value: file.remote.tlsDir, from: inFile('tls_dir') } : undefined;
  if (tlsDir && tlsDir.value.trim() === '') bad(tlsDir, 'must be a non-empty path');
  const listen: ListenAddress[] = [];
  for (const source of listenSources) {
    const parsed = parseListenAddress(source.value, insecureLoopback);
    if (typeof parsed === 'string') bad(source, parsed);
    else if (parsed.scheme === 'https' && !tlsDir) bad(source, 'an https listener needs --tls-dir DIR with ca.pem, server-cert.pem and server-key.pem (see hypercore tls init)');
    else listen.push(parsed);
  }
  const allowed = flags.allowHostPath?.length ? flags.allowHostPath.map((value) => ({ value, from: '--allow-host-path' })) : (file?.remote.allowHostPaths ?? []).map((value) => ({ value, from: inFile('allow_host_paths') }));
  for (const dir of allowed) if (!dir.value.startsWith('/')) bad(dir, 'must be an absolute directory');
  const bridges = flags.allowBridge?.length ? flags.allowBridge.map((value) => ({ value, from: '--allow-bridge' })) : (file?.remote.allowBridges ?? []).map((value) => ({ value, from: inFile('allow_bridges') }));
  for (const bridge of bridges) if (!/^[^\s/]{1,15}$/.test(bridge.value)) bad(bridge, 'must be an interface name (1-15 characters, no "/" or spaces)');
  return { listen, insecureLoopback, allowHostPaths: allowed.map((d) => resolve(d.value)), allowBridges: bridges.map((b) => b.value), ...(tlsDir ? { tlsDir: resolve(tlsDir.value) } : {}) };
}

/** @throws ConfigInvalidError listing every bad setting. */
export function resolveSettings(flags: SettingsInput, env: NodeJS.ProcessEnv, file?: DaemonConfigFile): DaemonSettings {
  const problems: ValidationIssue[] = [];
  const bad = (s: Sourced, message: string): void => void problems.push({ path: s.from, value: s.value, message });
  const dir = (s: Sourced | undefined, fallback: string): string => {
    if (s === undefined) return fallback;
    if (s.value.trim() === '') bad(s, 'must be a non-empty path');
    return resolve(s.value);
  };

  const rootDir = dir(pick(flags.root, '--root', env, 'HYPERCORE_ROOT'), DEFAULT_ROOT);
  const runDir = dir(pick(flags.runDir, '--run-dir', env, 'HYPERCORE_RUN_DIR'), DEFAULT_RUN_DIR);
  const socket = dir(pick(flags.socket, '--socket', env, 'HYPERCORE_SOCKET'), join(runDir, 'hypercore.sock'));
  const bootDir = dir(pick(flags.bootDir, '--boot-dir', env, 'HYPERCORE_BOOT_DIR'), DEFAULT_BOOT_DIR);
  // Guest RAM on tmpfs, one directory per daemon (root), so two daemons never share a file name.
  const memoryDir = dir(pick(flags.memoryDir, '--memory-dir', env, 'HYPERCORE_MEMORY_DIR'), `/dev/shm/hypercore-${createHash('sha256').update(rootDir).digest('hex').slice(0, 8)}`);

  const level = pick(flags.logLevel, '--log-level', env, 'HYPERCORE_LOG_LEVEL');
  let logLevel: LogLevel = 'info';
  if (level !== undefined) {
    if ((logLevels as readonly string[]).includes(level.value)) logLevel = level.value as LogLevel;
    else bad(level, `must be one of ${logLevels.join(', ')}`);
  }

  const timeout = pick(undefined, '', env, 'HYPERCORE_AGENT_TIMEOUT');
  let agentTimeoutMs = 120_000;
  if (timeout !== undefined) {
    const seconds = /^\d+(\.\d+)?$/.test(timeout.value.trim()) ? Number(timeout.value) : Number.NaN;
    if (seconds > 0 && seconds <= MAX_AGENT_TIMEOUT_S) agentTimeoutMs = Math.round(seconds * 1000);
    else bad(timeout, `must be a number of seconds greater than 0 and at most ${MAX_AGENT_TIMEOUT_S}`);
  }

  const imageSize = pick(flags.maxImageSize, '--max-image-size', env, 'HYPERCORE_MAX_IMAGE_SIZE');
  let maxImageBytes = DEFAULT_MAX_IMAGE_MIB * 1024 * 1024;
  if (imageSize !== undefined) {
    const mib = /^\d+$/.test(imageSize.value.trim()) ? Number(imageSize.value) : Number.NaN;
    if (mib >= 1 && mib <= 1024 * 1024) maxImageBytes = mib * 1024 * 1024;
    else bad(imageSize, 'must be a whole number of MiB from 1 to 1048576');
  }

  const logCap = pick(flags.workloadLogCap, '--workload-log-cap', env, 'HYPERCORE_WORKLOAD_LOG_CAP');
  let workloadLogCapBytes = DEFAULT_WORKLOAD_LOG_CAP_BYTES;
  if (logCap !== undefined) {
    const bytes = byteCount(logCap.value);
    if (bytes !== undefined && bytes >= 4096) workloadLogCapBytes = bytes;
    else bad(logCap, 'must be a size of at least 4096 bytes, like 16777216 or 16M (K, M, G: powers of 1024)');
  }

  const consoleLogCapBytes = flags.consoleLogCapBytes ?? 1024 * 1024;
  if (!Number.isSafeInteger(consoleLogCapBytes) || consoleLogCapBytes < 4096) bad({ value: String(consoleLogCapBytes), from: 'consoleLogCapBytes' }, 'must be an integer of at least 4096 (bytes)');

  const registries: Sourced[] = [
    ...(flags.insecureRegistry ?? []).map((value) => ({ value, from: '--insecure-registry' })),
    ...(env['HYPERCORE_INSECURE_REGISTRIES'] ?? '').split(',').map((s) => s.trim()).filter(Boolean).map((value) => ({ value, from: 'HYPERCORE_INSECURE_REGISTRIES' })),
  ];
  for (const r of registries) if (!registryHost.test(r.value)) bad(r, 'must be host or host:port (no scheme, no path)');

  const remote = resolveRemote(flags, file, bad);

  if (problems.length > 0) {
    const lines = problems.map((p) => `${p.path} = ${JSON.stringify(p.value)}: ${p.message}`);
    throw new ConfigInvalidError(`invalid hypercored settings: ${lines.join('; ')}`, problems);
  }
  return { rootDir, runDir, socket, bootDir, memoryDir, logLevel, consoleLogCapBytes, workloadLogCapBytes, agentTimeoutMs, maxImageBytes, insecureRegistries: registries.map((r) => r.value), remote };
}
