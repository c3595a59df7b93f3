/**
 * CLI flags that override hac.toml values. They are written into the parsed tree before
 * validation so one schema judges both; we remember which paths came from which flag so an
 * error names `--cores` instead of a line of a file the user did not write that value in.
 */
import { formatKeyPath, isTable, type TomlTree } from './key-path.js';

/**
 * CLI flags that override file values; paths are relative to the current working directory.
 * An array value replaces the file's whole array (it is not appended to it).
 */
export interface HacOverrides {
  name?: string;
  cores?: number;
  memoryMib?: number;
  provider?: string;
  kernel?: string;
  initrd?: string;
  drive?: string;
  kernelArgs?: string;
  accel?: string;
  /** OCI image reference (`hardware.ref`). */
  image?: string;
  /** The arguments after `--`: the workload's command (`workload.command`, replaces the image's Cmd). */
  command?: string[];
  /** `KEY=VALUE` entries (`workload.env`), one per `--env`. */
  env?: string[];
  /** Absolute working directory of the workload (`workload.workdir`). */
  workdir?: string;
  /** Numeric `uid` or `uid:gid` (`workload.user`). */
  user?: string;
  /** Give the workload a terminal (`workload.tty`). */
  tty?: boolean;
  network?: string;
}

/** For each override: the hac.toml key it replaces and the CLI flag that sets it. */
export const overrideTargets: Readonly<Record<keyof HacOverrides, { path: readonly string[]; flag: string }>> = {
  name: { path: ['spacecore', 'name'], flag: '--name' },
  cores: { path: ['hardware', 'cores'], flag: '--cores' },
  memoryMib: { path: ['hardware', 'memory'], flag: '--memory' },
  provider: { path: ['hypervisor', 'provider'], flag: '--provider' },
  kernel: { path: ['hardware', 'kernel'], flag: '--kernel' },
  initrd: { path: ['hardware', 'initrd'], flag: '--initrd' },
  drive: { path: ['hardware', 'drive'], flag: '--drive' },
  kernelArgs: { path: ['hardware', 'kernel_args'], flag: '--kernel-args' },
  accel: { path: ['hypervisor', 'qemu', 'accel'], flag: '--accel' },
  image: { path: ['hardware', 'ref'], flag: '--image' },
  command: { path: ['workload', 'command'], flag: '-- COMMAND' },
  env: { path: ['workload', 'env'], flag: '--env' },
  workdir: { path: ['workload', 'workdir'], flag: '--workdir' },
  user: { path: ['workload', 'user'], flag: '--user' },
  tty: { path: ['workload', 'tty'], flag: '-t' },
  network: { path: ['network', 'mode'], flag: '--network' },
};

/**
 * Writes the given overrides into `tree` (in place) and returns the flag for each overridden
 * path (`formatKeyPath` form). A parent that is not a table is left alone: that is already an error.
 */
export function applyOverrides(tree: TomlTree, overrides: HacOverrides = {}): Map<string, string> {
  const flags = new Map<string, string>();
  for (const [field, target] of Object.entries(overrideTargets) as [keyof HacOverrides, (typeof overrideTargets)[keyof HacOverrides]][]) {
    const value = overrides[field];
    if (value === undefined) continue;
    let node: TomlTree = tree;
    let reachable = true;
    for (const segment of target.path.slice(0, -1)) {
      if (!Object.hasOwn(node, segment)) node[segment] = Object.create(null);
      const next = node[segment];
      if (!isTable(next)) {
        reachable = false;
        break;
      }
      node = next;
    }
    if (!reachable) continue;
    // Arrays are copied: the tree is validated and mapped, and must not share the caller's array.
    node[target.path[target.path.length - 1] ?? ''] = Array.isArray(value) ? [...value] : value;
    flags.set(formatKeyPath(target.path), target.flag);
  }
  return flags;
}
