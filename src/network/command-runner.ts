/**
 * How the network module runs `ip`, `nft`, `ss` and `sysctl`. It is a function type rather than a
 * direct call to `runCommand` so tests can run every command inside a throw-away network namespace
 * (and unit tests can fake it) without the module knowing.
 */
import { runCommand } from '../system/command.js';

/** Runs `file` with `args` (no shell); resolves with stdout on exit 0, rejects otherwise. */
export type CommandRunner = (file: string, args: string[]) => Promise<{ stdout: string }>;

/** Network commands are quick; 30 s only guards against a wedged netlink/nft call. */
const NETWORK_COMMAND_TIMEOUT_MS = 30_000;

/** Runs commands in the host's own namespace through the project-wide `runCommand`. */
export const defaultRunner: CommandRunner = async (file, args) => {
  const result = await runCommand(file, args, { timeoutMs: NETWORK_COMMAND_TIMEOUT_MS });
  return { stdout: result.stdout };
};

/**
 * Runs every command as `ip netns exec <ns> <file> ...`, so nothing it does can touch the host's
 * real network namespace. Used by tests; `base` lets a test wrap another runner.
 */
export function netnsRunner(ns: string, base: CommandRunner = defaultRunner): CommandRunner {
  return (file, args) => base('ip', ['netns', 'exec', ns, file, ...args]);
}
